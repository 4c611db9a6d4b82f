package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// deliveryTimeout bounds how long a test waits for a notification: generous, because the race
// detector and a busy 2-core machine slow everything; speed is measured by the benchmarks.
const deliveryTimeout = 30 * time.Second

type postResponse struct {
	ID string `json:"id"`
}

func createPost(t *testing.T, c *client, token, text string) string {
	t.Helper()
	r := c.do(http.MethodPost, "/v1/posts", token, map[string]string{"text": text})
	expect(t, "create post", r, http.StatusCreated, "")
	var p postResponse
	r.JSON(t, &p)
	return p.ID
}

// waitPresence polls the user's presence through c until it is want.
func waitPresence(t *testing.T, c *client, token, username string, want bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(deliveryTimeout)
	for {
		r := c.do(http.MethodGet, "/v1/users/"+username+"/presence", token, nil)
		expect(t, "presence", r, http.StatusOK, "")
		var p map[string]any
		r.JSON(t, &p)
		if p["online"] == want {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence of %s never became online=%v: %v", username, want, p)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLastSeq polls the unread count until the user's newest sequence number reaches want.
func waitLastSeq(t *testing.T, c *client, token string, want int64) {
	t.Helper()
	deadline := time.Now().Add(deliveryTimeout)
	for {
		r := c.do(http.MethodGet, "/v1/notifications/unread_count", token, nil)
		expect(t, "unread count", r, http.StatusOK, "")
		var u struct {
			LastSeq int64 `json:"last_seq"`
		}
		r.JSON(t, &u)
		if u.LastSeq >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("inbox never reached seq %d (at %d)", want, u.LastSeq)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func dataField(t *testing.T, n notificationFrame, key string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(n.Data, &m); err != nil {
		t.Fatalf("notification data %s: %v", n.Data, err)
	}
	s, _ := m[key].(string)
	return s
}

// realtime is one deployment under test: where B acts (gw1), where A first listens (gw2),
// how to run `piazza dlq`, and the file that arms the notification handlers' failpoint.
type realtime struct {
	gw1, gw2  *client
	dlq       func(args ...string) string
	failpoint string
}

// realtimeScenario is the double hop as a user sees it: A follows B and listens on gw2, B
// posts through gw1, A gets it; A goes away, B likes, comments and follows, A comes back on
// gw1 with Last-Event-ID and gets exactly what it missed; then a failing handler dead-letters
// one event without stalling the next, and a replay delivers it.
func realtimeScenario(t *testing.T, d realtime, suffix string) (aToken string, aName string) {
	a := signup(t, d.gw1, "ann_"+suffix)
	b := signup(t, d.gw1, "ben_"+suffix)
	aName = a.User.Username
	expect(t, "A follows B", d.gw1.do(http.MethodPost, "/v1/users/"+b.User.Username+"/follow", a.AccessToken, nil), http.StatusNoContent, "")
	aPost := createPost(t, d.gw1, a.AccessToken, "A's first post")
	aSecond := createPost(t, d.gw1, a.AccessToken, "A's second post")

	// A listens on gateway 2; B posts through gateway 1.
	s := d.gw2.openStream(a.AccessToken, "")
	waitPresence(t, d.gw1, b.AccessToken, aName, true)
	bPost := createPost(t, d.gw1, b.AccessToken, "hello from B")
	n := s.notification("post.created over the double hop", deliveryTimeout)
	if n.Type != "post.created" || dataField(t, n, "post_id") != bPost {
		t.Fatalf("got %s %s, want post.created of %s", n.Type, n.Data, bPost)
	}
	last := n.Seq
	s.close()

	// While A is away: B likes A's post, comments, and follows A.
	expect(t, "B likes", d.gw1.do(http.MethodPost, "/v1/posts/"+aPost+"/like", b.AccessToken, nil), http.StatusNoContent, "")
	r := d.gw1.do(http.MethodPost, "/v1/posts/"+aPost+"/comments", b.AccessToken, map[string]string{"text": "nice"})
	expect(t, "B comments", r, http.StatusCreated, "")
	expect(t, "B follows A", d.gw1.do(http.MethodPost, "/v1/users/"+aName+"/follow", b.AccessToken, nil), http.StatusNoContent, "")
	waitLastSeq(t, d.gw1, a.AccessToken, last+3)

	// A comes back on the other gateway with its Last-Event-ID: exactly the three missed
	// notifications, in sequence order, then live ones with no duplicate in between.
	s = d.gw1.openStream(a.AccessToken, strconv.FormatInt(last, 10))
	seen := map[string]int64{}
	for i := range 3 {
		n := s.notification("replay", deliveryTimeout)
		if n.Seq != last+1+int64(i) {
			t.Fatalf("replay %d: seq %d, want %d", i, n.Seq, last+1+int64(i))
		}
		seen[n.Type] = n.Seq
	}
	if len(seen) != 3 || seen["post.liked"] == 0 || seen["post.commented"] == 0 || seen["user.followed"] == 0 {
		t.Fatalf("replayed types %v, want post.liked, post.commented, user.followed", seen)
	}
	if seen["post.liked"] > seen["post.commented"] {
		t.Fatalf("the like (seq %d) came after the comment (seq %d)", seen["post.liked"], seen["post.commented"])
	}
	last += 3
	waitPresence(t, d.gw1, b.AccessToken, aName, true)

	// A failing handler: the like of A's second post fails while the failpoint is armed, goes
	// to dead_letters after the configured attempts, and does not stall the comment behind it
	// on the same partition.
	if err := os.WriteFile(d.failpoint, []byte("armed"), 0o600); err != nil {
		t.Fatal(err)
	}
	expect(t, "B likes again", d.gw1.do(http.MethodPost, "/v1/posts/"+aSecond+"/like", b.AccessToken, nil), http.StatusNoContent, "")
	r = d.gw1.do(http.MethodPost, "/v1/posts/"+aSecond+"/comments", b.AccessToken, map[string]string{"text": "behind the failure"})
	expect(t, "B comments again", r, http.StatusCreated, "")
	n = s.notification("the comment behind the dead-lettered like", deliveryTimeout)
	if n.Type != "post.commented" || n.Seq != last+1 {
		t.Fatalf("got %s seq %d, want post.commented seq %d", n.Type, n.Seq, last+1)
	}
	last = n.Seq

	var listed string
	deadline := time.Now().Add(deliveryTimeout)
	for {
		listed = d.dlq("list", "--topic", "posts")
		if strings.Contains(listed, "notification.posts") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failed like never reached the dead-letter archive:\n%s", listed)
		}
		time.Sleep(100 * time.Millisecond)
	}
	id := strings.Fields(strings.Split(strings.TrimSpace(listed), "\n")[1])[0]
	shown := d.dlq("show", id)
	if !strings.Contains(shown, `"attempts": 3`) || !strings.Contains(shown, "failpoint") {
		t.Fatalf("dead letter %s does not record 3 attempts and the failure:\n%s", id, shown)
	}

	// Fault removed, replayed: A gets the like.
	if err := os.Remove(d.failpoint); err != nil {
		t.Fatal(err)
	}
	d.dlq("replay", id)
	n = s.notification("the replayed like", deliveryTimeout)
	if n.Type != "post.liked" || n.Seq != last+1 || dataField(t, n, "post_id") != aSecond {
		t.Fatalf("got %s seq %d %s, want post.liked of %s at seq %d", n.Type, n.Seq, n.Data, aSecond, last+1)
	}
	s.close()
	return a.AccessToken, aName
}

// runDLQ runs `piazza dlq args...` and returns its standard output.
func runDLQ(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"dlq"}, args...)...)
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("piazza dlq %s: %v\n%s\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}
