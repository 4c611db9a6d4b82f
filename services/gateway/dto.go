package gateway

import (
	"errors"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/errs"
)

// The gateway's request and response bodies. They are the public contract (api/openapi.json
// describes exactly these), deliberately separate from user-service's messages: a field added
// there does not leak out here.

// Edge limits. They describe the shape a request must have to be worth sending to user-service,
// which enforces the account rules themselves (the exact email syntax, common passwords,
// control characters, uniqueness). They are user-service's own limits, so the edge is not
// stricter than the service behind it, bar exotic email addresses whose quoted local part holds
// white space or an @, which the shape check below refuses. The OpenAPI document states the same
// limits; JSON Schema counts string lengths in code points, and so does the gateway, except for
// the password's upper bound, which is in bytes (the document says so in words).
const (
	usernameMin    = 3
	usernameMax    = 30
	emailMax       = 254 // RFC 5321's limit on a forward path
	passwordMin    = 10  // characters
	passwordMax    = 256 // bytes of UTF-8: it bounds the hashing work one request can ask for
	loginMax       = emailMax
	refreshMax     = 512
	displayNameMax = 50
	bioMax         = 160
	cursorMax      = 512
	limitMin       = 1
	limitMax       = 100
	limitDefault   = 20
)

var (
	// usernameRE accepts either case: usernames are case-insensitive, and user-service stores
	// them lower-cased.
	usernameRE = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	// emailRE is a shape check only (one @, something on both sides, no white space);
	// user-service normalises and checks the address.
	emailRE = regexp.MustCompile(`^[^@\s]+@[^@\s]+$`)
	// cursorRE: user-service's cursors are opaque, but always made of URL-unreserved
	// characters, so they travel in a query string unescaped.
	cursorRE = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)
)

// fieldCheck collects the violations of one request, in field order.
type fieldCheck []errs.FieldViolation

func (c *fieldCheck) add(pointer, detail string) { *c = append(*c, errs.Field(pointer, detail)) }

// length checks a string's length in code points; a minimum above zero makes it required. It
// reports whether the value passed.
func (c *fieldCheck) length(pointer, v string, minLen, maxLen int) bool {
	n := utf8.RuneCountInString(v)
	switch {
	case n == 0 && minLen > 0:
		c.add(pointer, "is required")
	case n < minLen:
		c.add(pointer, "must be at least "+strconv.Itoa(minLen)+" characters long")
	case n > maxLen:
		c.add(pointer, "must be at most "+strconv.Itoa(maxLen)+" characters long")
	default:
		return true
	}
	return false
}

func (c fieldCheck) err() error {
	if len(c) == 0 {
		return nil
	}
	return errs.Validation("The request is invalid.", c...)
}

func validUsername(v string) bool {
	n := len(v) // ASCII only when it matches
	return n >= usernameMin && n <= usernameMax && usernameRE.MatchString(v)
}

type signupRequest struct {
	Username string `json:"username"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (r *signupRequest) validate() error {
	var c fieldCheck
	if c.length("/username", r.Username, usernameMin, usernameMax) && !usernameRE.MatchString(r.Username) {
		c.add("/username", "may contain only letters a-z, digits and underscores")
	}
	if c.length("/email", r.Email, 1, emailMax) && !emailRE.MatchString(r.Email) {
		c.add("/email", "must be an email address")
	}
	if c.length("/password", r.Password, passwordMin, math.MaxInt) {
		c.passwordBytes(r.Password)
	}
	return c.err()
}

func (c *fieldCheck) passwordBytes(p string) {
	if len(p) > passwordMax {
		c.add("/password", "must be at most "+strconv.Itoa(passwordMax)+" bytes long")
	}
}

type loginRequest struct {
	// Login is a username or an email address.
	Login    string `json:"login"`
	Password string `json:"password"`
}

func (r *loginRequest) validate() error {
	var c fieldCheck
	c.length("/login", r.Login, 1, loginMax)
	// No minimum beyond presence: the rules of the day decide sign-ups, not logins.
	if c.length("/password", r.Password, 1, math.MaxInt) {
		c.passwordBytes(r.Password)
	}
	return c.err()
}

// refreshTokenRequest is the body of refresh and logout.
type refreshTokenRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (r *refreshTokenRequest) validate() error {
	var c fieldCheck
	c.length("/refresh_token", r.RefreshToken, 1, refreshMax)
	return c.err()
}

// updateProfileRequest changes the fields present; absent or null ones stay as they are.
type updateProfileRequest struct {
	DisplayName *string `json:"display_name"`
	Bio         *string `json:"bio"`
}

func (r *updateProfileRequest) validate() error {
	var c fieldCheck
	if r.DisplayName != nil {
		c.length("/display_name", *r.DisplayName, 0, displayNameMax)
	}
	if r.Bio != nil {
		c.length("/bio", *r.Bio, 0, bioMax)
	}
	return c.err()
}

// pageQuery is the query of a list route: ?cursor=&limit=. Violations point at the parameter
// as if the query were a JSON object ("/limit"), as the OpenAPI document says.
type pageQuery struct {
	Cursor string
	Limit  int
}

func parsePageQuery(rawQuery string) (pageQuery, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return pageQuery{}, errs.Validation("The query string is malformed.", errs.Field("", "malformed query string"))
	}
	p := pageQuery{Limit: limitDefault}
	var c fieldCheck
	if vs, ok := q["cursor"]; ok {
		switch v := vs[0]; {
		case len(vs) > 1:
			c.add("/cursor", "must be given once")
		case v == "":
			// An empty cursor is the first page, as if absent.
		case len(v) > cursorMax || !cursorRE.MatchString(v):
			c.add("/cursor", "is not a cursor returned by this API")
		default:
			p.Cursor = v
		}
	}
	if vs, ok := q["limit"]; ok {
		n, err := strconv.Atoi(vs[0])
		switch {
		case len(vs) > 1:
			c.add("/limit", "must be given once")
		case err != nil || n < limitMin || n > limitMax:
			c.add("/limit", "must be an integer from "+strconv.Itoa(limitMin)+" to "+strconv.Itoa(limitMax))
		default:
			p.Limit = n
		}
	}
	return p, c.err()
}

// userResponse is a user as anybody may see it.
type userResponse struct {
	ID             string    `json:"id"`
	Username       string    `json:"username"`
	DisplayName    string    `json:"display_name"`
	Bio            string    `json:"bio"`
	FollowersCount int64     `json:"followers_count"`
	FollowingCount int64     `json:"following_count"`
	CreatedAt      time.Time `json:"created_at"`
}

// meResponse is the caller's own user: the public fields and the email address.
type meResponse struct {
	userResponse
	Email string `json:"email"`
}

// authResponse answers sign-up, login and refresh.
type authResponse struct {
	User         meResponse `json:"user"`
	AccessToken  string     `json:"access_token"`
	RefreshToken string     `json:"refresh_token"`
	TokenType    string     `json:"token_type"`
	// ExpiresIn is the access token's remaining lifetime in seconds (RFC 6749 section 5.1).
	ExpiresIn int64 `json:"expires_in"`
}

// pageResponse is one page of a list. NextCursor is null on the last page.
type pageResponse struct {
	Items      []userResponse `json:"items"`
	NextCursor *string        `json:"next_cursor"`
}

func toUser(u *userv1.User) userResponse {
	return userResponse{
		ID:             u.GetId(),
		Username:       u.GetUsername(),
		DisplayName:    u.GetDisplayName(),
		Bio:            u.GetBio(),
		FollowersCount: u.GetFollowersCount(),
		FollowingCount: u.GetFollowingCount(),
		// Truncated to the second: RFC 3339 without a fraction is what every client parses.
		CreatedAt: u.GetCreatedAt().AsTime().UTC().Truncate(time.Second),
	}
}

func toMe(u *userv1.User) meResponse {
	return meResponse{userResponse: toUser(u), Email: u.GetEmail()}
}

func toAuth(a *userv1.AuthResponse, now time.Time) (authResponse, error) {
	if a.GetUser() == nil || a.GetAccessToken() == "" || a.GetRefreshToken() == "" || a.GetAccessTokenExpiresAt() == nil {
		return authResponse{}, errs.Wrap(errors.New("gateway: user-service returned an incomplete AuthResponse"), errs.Internal, "internal error")
	}
	secs := math.Round(a.GetAccessTokenExpiresAt().AsTime().Sub(now).Seconds())
	return authResponse{
		User:         toMe(a.GetUser()),
		AccessToken:  a.GetAccessToken(),
		RefreshToken: a.GetRefreshToken(),
		TokenType:    "Bearer",
		ExpiresIn:    max(int64(secs), 0),
	}, nil
}

func toPage(r *userv1.ListFollowsResponse) pageResponse {
	p := pageResponse{Items: make([]userResponse, 0, len(r.GetItems()))}
	for _, u := range r.GetItems() {
		p.Items = append(p.Items, toUser(u))
	}
	if c := r.GetNextCursor(); c != "" {
		p.NextCursor = &c
	}
	return p
}

// pathUsername is the {username} of a route; a value no account can have is not found, without
// asking user-service.
func pathUsername(v string) (string, error) {
	if !validUsername(v) {
		return "", errs.New(errs.NotFound, "No such user.")
	}
	return strings.ToLower(v), nil
}
