package remote

import "strings"

// Quote quotes s for a POSIX shell so that it is one word, taken literally.
// Words made only of characters no shell treats specially are left as they
// are, so logged commands stay readable.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if strings.IndexFunc(s, needsQuoting) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ShellJoin quotes every argument and joins them with spaces: the result
// runs args[0] with the other arguments, none of them interpreted by the
// shell.
func ShellJoin(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}

func needsQuoting(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune("_-+.,/:@%", r)
}
