package fielderr_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/piazza-social/piazza/platform/fielderr"
)

type rule struct{ msg string }

func (r *rule) Error() string { return r.msg }

var (
	errTooLong = &rule{"too long"}
	errEmpty   = &rule{"empty"}
)

func TestAllFindsEveryViolationThroughJoinsAndWrapsInOrder(t *testing.T) {
	var l fielderr.List[*rule]
	if l.Err() != nil {
		t.Fatal("an empty list must be no error")
	}
	l.Add("name", errEmpty)
	l.Add("bio", errTooLong)
	err := fmt.Errorf("signing up: %w", errors.Join(l.Err(), errors.New("unrelated")))

	got := fielderr.All[*rule](err)
	if len(got) != 2 || got[0].Field != "name" || got[1].Field != "bio" || got[1].Err != errTooLong {
		t.Fatalf("All = %v", got)
	}
	if !errors.Is(err, errTooLong) || got[0].Error() != "name: empty" {
		t.Fatalf("errors.Is through the wrapper failed, or message %q", got[0].Error())
	}
	if fielderr.All[*rule](errors.New("plain")) != nil {
		t.Fatal("a plain error has no field violations")
	}
}
