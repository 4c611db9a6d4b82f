package gateway

import (
	"context"
	"net/http"
	"net/url"

	"google.golang.org/grpc"

	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/web"
)

// The identity API's handlers. Each decodes and validates its input, calls user-service, and
// writes the gateway's own response shape; errors, user-service's included (they arrive as
// *errs.Error with their code), are returned for the Responder to write as problems.

func (s *Service) signup(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	// The address limit comes first, before the body is even read: it is the cheap defence
	// against a flood.
	if err := s.allow(ctx, "signup", s.addressKey(r), s.cfg.RateLimits.SignupPerAddress); err != nil {
		return err
	}
	var req signupRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	if err := s.allow(ctx, "signup", accountKey("username", req.Username), s.cfg.RateLimits.SignupPerAccount); err != nil {
		return err
	}
	if err := s.allow(ctx, "signup", accountKey("email", req.Email), s.cfg.RateLimits.SignupPerAccount); err != nil {
		return err
	}
	resp, err := s.users.SignUp(ctx, &userv1.SignUpRequest{Username: req.Username, Email: req.Email, Password: req.Password})
	if err != nil {
		return err
	}
	if name := resp.GetUser().GetUsername(); name != "" {
		w.Header().Set("Location", "/v1/users/"+url.PathEscape(name))
	}
	return s.writeAuth(w, r, http.StatusCreated, resp)
}

func (s *Service) login(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if err := s.allow(ctx, "login", s.addressKey(r), s.cfg.RateLimits.LoginPerAddress); err != nil {
		return err
	}
	var req loginRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	if err := s.allow(ctx, "login", accountKey("account", req.Login), s.cfg.RateLimits.LoginPerAccount); err != nil {
		return err
	}
	resp, err := s.users.Login(ctx, &userv1.LoginRequest{Login: req.Login, Password: req.Password})
	if err != nil {
		return err
	}
	return s.writeAuth(w, r, http.StatusOK, resp)
}

func (s *Service) refresh(w http.ResponseWriter, r *http.Request) error {
	var req refreshTokenRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	resp, err := s.users.Refresh(r.Context(), &userv1.RefreshRequest{RefreshToken: req.RefreshToken})
	if err != nil {
		return err
	}
	return s.writeAuth(w, r, http.StatusOK, resp)
}

// logout needs no access token: the refresh token names the session, and a client whose access
// token has expired must still be able to log out.
func (s *Service) logout(w http.ResponseWriter, r *http.Request) error {
	var req refreshTokenRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	if _, err := s.users.Logout(r.Context(), &userv1.LogoutRequest{RefreshToken: req.RefreshToken}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) writeAuth(w http.ResponseWriter, r *http.Request, status int, resp *userv1.AuthResponse) error {
	body, err := toAuth(resp, s.cfg.Now())
	if err != nil {
		return err
	}
	// Tokens must not be stored by caches along the way (RFC 6749 section 5.1).
	w.Header().Set("Cache-Control", "no-store")
	s.rs.WriteJSON(w, r, status, body)
	return nil
}

func (s *Service) getMe(w http.ResponseWriter, r *http.Request) error {
	c := callerFrom(r.Context())
	resp, err := s.users.GetUser(r.Context(), &userv1.GetUserRequest{Key: &userv1.GetUserRequest_Id{Id: c.UserID}, CallerId: c.UserID})
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "private, no-store")
	s.rs.WriteJSON(w, r, http.StatusOK, toMe(resp.GetUser()))
	return nil
}

func (s *Service) updateMe(w http.ResponseWriter, r *http.Request) error {
	var req updateProfileRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	c := callerFrom(r.Context())
	resp, err := s.users.UpdateProfile(r.Context(), &userv1.UpdateProfileRequest{
		CallerId: c.UserID, DisplayName: req.DisplayName, Bio: req.Bio,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "private, no-store")
	s.rs.WriteJSON(w, r, http.StatusOK, toMe(resp.GetUser()))
	return nil
}

func (s *Service) getUser(w http.ResponseWriter, r *http.Request) error {
	username, err := pathUsername(r.PathValue("username"))
	if err != nil {
		return err
	}
	resp, err := s.users.GetUser(r.Context(), &userv1.GetUserRequest{Key: &userv1.GetUserRequest_Username{Username: username}})
	if err != nil {
		return err
	}
	s.rs.WriteJSON(w, r, http.StatusOK, toUser(resp.GetUser()))
	return nil
}

func (s *Service) follow(w http.ResponseWriter, r *http.Request) error {
	username, err := pathUsername(r.PathValue("username"))
	if err != nil {
		return err
	}
	c := callerFrom(r.Context())
	if _, err := s.users.Follow(r.Context(), &userv1.FollowRequest{CallerId: c.UserID, Username: username}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) unfollow(w http.ResponseWriter, r *http.Request) error {
	username, err := pathUsername(r.PathValue("username"))
	if err != nil {
		return err
	}
	c := callerFrom(r.Context())
	if _, err := s.users.Unfollow(r.Context(), &userv1.UnfollowRequest{CallerId: c.UserID, Username: username}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) listFollowers(w http.ResponseWriter, r *http.Request) error {
	return s.listFollows(w, r, s.users.ListFollowers)
}

func (s *Service) listFollowing(w http.ResponseWriter, r *http.Request) error {
	return s.listFollows(w, r, s.users.ListFollowing)
}

type listFollowsFunc = func(ctx context.Context, in *userv1.ListFollowsRequest, opts ...grpc.CallOption) (*userv1.ListFollowsResponse, error)

func (s *Service) listFollows(w http.ResponseWriter, r *http.Request, list listFollowsFunc) error {
	username, err := pathUsername(r.PathValue("username"))
	if err != nil {
		return err
	}
	q, err := parsePageQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	resp, err := list(r.Context(), &userv1.ListFollowsRequest{Username: username, Cursor: q.Cursor, Limit: int32(q.Limit)})
	if err != nil {
		return err
	}
	s.rs.WriteJSON(w, r, http.StatusOK, toPage(resp))
	return nil
}
