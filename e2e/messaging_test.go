package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
)

// messagingScenario: A starts a conversation with B and sends a message; B's stream gets it as
// a notification carrying the message; a retried send with the same client_msg_id returns the
// original; a third user can neither read nor send (404, as if it did not exist).
func messagingScenario(t *testing.T, gwA, gwB *client, suffix string) {
	a := signup(t, gwA, "amy_"+suffix)
	b := signup(t, gwA, "bob_"+suffix)
	eve := signup(t, gwA, "eve_"+suffix)

	r := gwA.do(http.MethodPost, "/v1/conversations", a.AccessToken, map[string]any{"participants": []string{b.User.Username}})
	expect(t, "create conversation", r, http.StatusCreated, "")
	var conv struct {
		ID string `json:"id"`
	}
	r.JSON(t, &conv)
	r = gwB.do(http.MethodPost, "/v1/conversations", a.AccessToken, map[string]any{"participants": []string{b.User.Username}})
	expect(t, "create the same 1:1 again", r, http.StatusOK, "")
	var again struct {
		ID string `json:"id"`
	}
	r.JSON(t, &again)
	if again.ID != conv.ID {
		t.Fatalf("the 1:1 conversation was created twice: %s and %s", conv.ID, again.ID)
	}

	s := gwB.openStream(b.AccessToken, "")
	waitPresence(t, gwA, a.AccessToken, b.User.Username, true)

	send := map[string]string{"text": "hi Bob", "client_msg_id": "c-1"}
	r = gwA.do(http.MethodPost, "/v1/conversations/"+conv.ID+"/messages", a.AccessToken, send)
	expect(t, "send", r, http.StatusCreated, "")
	var msg struct {
		ID string `json:"id"`
	}
	r.JSON(t, &msg)

	n := s.notification("message.sent to the other participant", deliveryTimeout)
	if n.Type != "message.sent" {
		t.Fatalf("got %s, want message.sent", n.Type)
	}
	var data struct {
		ConversationID string `json:"conversation_id"`
		Message        struct {
			ID   string `json:"id"`
			Text string `json:"text"`
		} `json:"message"`
	}
	if err := json.Unmarshal(n.Data, &data); err != nil {
		t.Fatal(err)
	}
	if data.ConversationID != conv.ID || data.Message.ID != msg.ID || data.Message.Text != "hi Bob" {
		t.Fatalf("notification data %s, want message %s of %s", n.Data, msg.ID, conv.ID)
	}

	// A retried send is the same message, and tells nobody again.
	r = gwB.do(http.MethodPost, "/v1/conversations/"+conv.ID+"/messages", a.AccessToken, send)
	expect(t, "retried send", r, http.StatusOK, "")
	var retried struct {
		ID string `json:"id"`
	}
	r.JSON(t, &retried)
	if retried.ID != msg.ID {
		t.Fatalf("retry created %s, want the original %s", retried.ID, msg.ID)
	}
	r = gwA.do(http.MethodPost, "/v1/conversations/"+conv.ID+"/messages", a.AccessToken, map[string]string{"text": "second", "client_msg_id": "c-2"})
	expect(t, "second send", r, http.StatusCreated, "")
	if n2 := s.notification("the next message", deliveryTimeout); n2.Seq != n.Seq+1 || n2.Type != "message.sent" {
		t.Fatalf("after the retry got %s seq %d, want the second message at seq %d", n2.Type, n2.Seq, n.Seq+1)
	}

	// History, newest first; B's unread count.
	r = gwB.do(http.MethodGet, "/v1/conversations/"+conv.ID+"/messages?limit=10", b.AccessToken, nil)
	expect(t, "history", r, http.StatusOK, "")
	var page struct {
		Items []struct {
			Text string `json:"text"`
		} `json:"items"`
	}
	r.JSON(t, &page)
	if len(page.Items) != 2 || page.Items[0].Text != "second" || page.Items[1].Text != "hi Bob" {
		t.Fatalf("history %+v, want [second, hi Bob]", page.Items)
	}

	// A non-participant learns nothing.
	expect(t, "outsider reads", gwA.do(http.MethodGet, "/v1/conversations/"+conv.ID+"/messages", eve.AccessToken, nil), http.StatusNotFound, "not_found")
	expect(t, "outsider sends", gwA.do(http.MethodPost, "/v1/conversations/"+conv.ID+"/messages", eve.AccessToken, map[string]string{"text": "let me in", "client_msg_id": "x"}), http.StatusNotFound, "not_found")
}
