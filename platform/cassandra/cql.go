package cassandra

import (
	"fmt"
	"strings"
)

// splitStatements splits the text of a .cql file into its statements, in order, without their
// terminating semicolons and with comments removed.
//
// A statement ends at a semicolon outside string literals ('it”s'), quoted identifiers
// ("Name"), dollar-quoted bodies ($$ ... $$, used by user-defined functions) and comments
// (-- and // to the end of the line, /* ... */). Conventionally each statement ends with a
// semicolon at the end of a line; the last one may omit it. Text made only of whitespace and
// comments is not a statement. An unterminated literal or comment is an error, since sending
// the rest of the file as one statement would hide the mistake behind a confusing server error.
func splitStatements(text string) ([]string, error) {
	var (
		out   []string
		cur   strings.Builder
		i     int
		n     = len(text)
		flush = func() {
			if s := strings.TrimSpace(cur.String()); s != "" {
				out = append(out, s)
			}
			cur.Reset()
		}
	)
	for i < n {
		c := text[i]
		switch {
		case c == ';':
			flush()
			i++
		case c == '\'' || c == '"':
			// A doubled quote inside the literal is an escaped quote, not its end.
			end := -1
			for j := i + 1; j < n; j++ {
				if text[j] == c {
					if j+1 < n && text[j+1] == c {
						j++
						continue
					}
					end = j
					break
				}
			}
			if end < 0 {
				return nil, unterminated(text, i, "string literal or quoted identifier")
			}
			cur.WriteString(text[i : end+1])
			i = end + 1
		case c == '$' && strings.HasPrefix(text[i:], "$$"):
			end := strings.Index(text[i+2:], "$$")
			if end < 0 {
				return nil, unterminated(text, i, "$$ body")
			}
			end += i + 2 + 2
			cur.WriteString(text[i:end])
			i = end
		case strings.HasPrefix(text[i:], "--") || strings.HasPrefix(text[i:], "//"):
			end := strings.IndexByte(text[i:], '\n')
			if end < 0 {
				i = n
			} else {
				i += end // keep the newline: it separates the tokens around the comment
			}
		case strings.HasPrefix(text[i:], "/*"):
			end := strings.Index(text[i+2:], "*/")
			if end < 0 {
				return nil, unterminated(text, i, "/* comment")
			}
			cur.WriteByte(' ')
			i += 2 + end + 2
		default:
			cur.WriteByte(c)
			i++
		}
	}
	flush()
	return out, nil
}

// unterminated reports a literal or comment starting at offset i that never ends, with its line.
func unterminated(text string, i int, what string) error {
	return fmt.Errorf("unterminated %s starting on line %d", what, strings.Count(text[:i], "\n")+1)
}
