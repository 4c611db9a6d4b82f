package gateway

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"slices"

	postv1 "github.com/piazza-social/piazza/gen/piazza/post/v1"
	userv1 "github.com/piazza-social/piazza/gen/piazza/user/v1"
	"github.com/piazza-social/piazza/platform/web"
)

// The post, comment, like and timeline handlers. post-service knows authors by id only; the
// gateway resolves the authors of a response with one user-service GetUsers call, whatever the
// number of items (never one call per item).

func (s *Service) createPost(w http.ResponseWriter, r *http.Request) error {
	var req textRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	ctx := r.Context()
	resp, err := s.cfg.Posts.CreatePost(ctx, &postv1.CreatePostRequest{CallerId: callerFrom(ctx).UserID, Text: req.Text})
	if err != nil {
		return err
	}
	a, err := s.resolveAuthors(ctx, []string{resp.GetPost().GetAuthorId()})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/posts/"+url.PathEscape(resp.GetPost().GetId()))
	s.rs.WriteJSON(w, r, http.StatusCreated, toPost(resp.GetPost(), a))
	return nil
}

func (s *Service) getPost(w http.ResponseWriter, r *http.Request) error {
	id, err := pathPostID(r.PathValue("id"))
	if err != nil {
		return err
	}
	ctx := r.Context()
	resp, err := s.cfg.Posts.GetPost(ctx, &postv1.GetPostRequest{Id: id, CallerId: callerFrom(ctx).UserID})
	if err != nil {
		return err
	}
	a, err := s.resolveAuthors(ctx, []string{resp.GetPost().GetAuthorId()})
	if err != nil {
		return err
	}
	s.rs.WriteJSON(w, r, http.StatusOK, toPost(resp.GetPost(), a))
	return nil
}

func (s *Service) deletePost(w http.ResponseWriter, r *http.Request) error {
	id, err := pathPostID(r.PathValue("id"))
	if err != nil {
		return err
	}
	ctx := r.Context()
	if _, err := s.cfg.Posts.DeletePost(ctx, &postv1.DeletePostRequest{Id: id, CallerId: callerFrom(ctx).UserID}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) likePost(w http.ResponseWriter, r *http.Request) error {
	id, err := pathPostID(r.PathValue("id"))
	if err != nil {
		return err
	}
	ctx := r.Context()
	if _, err := s.cfg.Posts.LikePost(ctx, &postv1.LikePostRequest{Id: id, CallerId: callerFrom(ctx).UserID}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) unlikePost(w http.ResponseWriter, r *http.Request) error {
	id, err := pathPostID(r.PathValue("id"))
	if err != nil {
		return err
	}
	ctx := r.Context()
	if _, err := s.cfg.Posts.UnlikePost(ctx, &postv1.UnlikePostRequest{Id: id, CallerId: callerFrom(ctx).UserID}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) addComment(w http.ResponseWriter, r *http.Request) error {
	id, err := pathPostID(r.PathValue("id"))
	if err != nil {
		return err
	}
	var req textRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	ctx := r.Context()
	resp, err := s.cfg.Posts.AddComment(ctx, &postv1.AddCommentRequest{PostId: id, CallerId: callerFrom(ctx).UserID, Text: req.Text})
	if err != nil {
		return err
	}
	a, err := s.resolveAuthors(ctx, []string{resp.GetComment().GetAuthorId()})
	if err != nil {
		return err
	}
	s.rs.WriteJSON(w, r, http.StatusCreated, toComment(resp.GetComment(), a))
	return nil
}

func (s *Service) listComments(w http.ResponseWriter, r *http.Request) error {
	id, err := pathPostID(r.PathValue("id"))
	if err != nil {
		return err
	}
	q, err := parsePageQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	ctx := r.Context()
	resp, err := s.cfg.Posts.ListComments(ctx, &postv1.ListCommentsRequest{PostId: id, Cursor: q.Cursor, Limit: int32(q.Limit)})
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(resp.GetItems()))
	for _, c := range resp.GetItems() {
		ids = append(ids, c.GetAuthorId())
	}
	a, err := s.resolveAuthors(ctx, ids)
	if err != nil {
		return err
	}
	items := make([]commentResponse, 0, len(resp.GetItems()))
	for _, c := range resp.GetItems() {
		items = append(items, toComment(c, a))
	}
	s.rs.WriteJSON(w, r, http.StatusOK, newList(items, resp.GetNextCursor()))
	return nil
}

func (s *Service) homeTimeline(w http.ResponseWriter, r *http.Request) error {
	q, err := parsePageQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	ctx := r.Context()
	resp, err := s.cfg.Posts.HomeTimeline(ctx, &postv1.HomeTimelineRequest{CallerId: callerFrom(ctx).UserID, Cursor: q.Cursor, Limit: int32(q.Limit)})
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "private, no-store")
	return s.writePosts(w, r, resp, nil)
}

func (s *Service) listUserPosts(w http.ResponseWriter, r *http.Request) error {
	username, err := pathUsername(r.PathValue("username"))
	if err != nil {
		return err
	}
	q, err := parsePageQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	ctx := r.Context()
	user, err := s.users.GetUser(ctx, &userv1.GetUserRequest{Key: &userv1.GetUserRequest_Username{Username: username}, CheckSession: carrySessionCheck(ctx)})
	if err != nil {
		return err
	}
	resp, err := s.cfg.Posts.ListUserPosts(ctx, &postv1.ListUserPostsRequest{
		AuthorId: user.GetUser().GetId(), CallerId: callerFrom(ctx).UserID, Cursor: q.Cursor, Limit: int32(q.Limit),
	})
	if err != nil {
		return err
	}
	return s.writePosts(w, r, resp, newAuthors([]*userv1.User{user.GetUser()}))
}

// writePosts writes a page of posts, resolving the authors that known does not hold.
func (s *Service) writePosts(w http.ResponseWriter, r *http.Request, resp *postv1.ListPostsResponse, known authors) error {
	var ids []string
	for _, p := range resp.GetItems() {
		if _, ok := known[p.GetAuthorId()]; !ok {
			ids = append(ids, p.GetAuthorId())
		}
	}
	a, err := s.resolveAuthors(r.Context(), ids)
	if err != nil {
		return err
	}
	for id, au := range known {
		a[id] = au
	}
	items := make([]postResponse, 0, len(resp.GetItems()))
	for _, p := range resp.GetItems() {
		items = append(items, toPost(p, a))
	}
	s.rs.WriteJSON(w, r, http.StatusOK, newList(items, resp.GetNextCursor()))
	return nil
}

// maxUsersPerLookup is user-service's bound on the ids of one GetUsers call.
const maxUsersPerLookup = 500

// resolveAuthors looks the users ids up with one GetUsers call (none for no ids; one more per
// 500 distinct ids, which only a page of many large group conversations reaches). Users that
// no longer exist are absent; their items show only the user's id. The first call carries the
// session check a read owes (carrySessionCheck).
func (s *Service) resolveAuthors(ctx context.Context, ids []string) (authors, error) {
	slices.Sort(ids)
	ids = slices.Compact(ids)
	a := make(authors, len(ids))
	for chunk := range slices.Chunk(ids, maxUsersPerLookup) {
		resp, err := s.users.GetUsers(ctx, &userv1.GetUsersRequest{Ids: chunk, CheckSession: carrySessionCheck(ctx)})
		if err != nil {
			return nil, err
		}
		maps.Copy(a, newAuthors(resp.GetUsers()))
	}
	return a, nil
}
