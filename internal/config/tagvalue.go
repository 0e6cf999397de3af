package config

import "unicode"

// Hand-written validators for values that would otherwise be regular
// expressions compiled at start-up: the \p{L}\p{N} classes of the tag-value
// rule alone compile into ~10 MB of allocations and keep ~5 MiB live, paid
// by every `eipd run` and by each `eipd healthcheck` a container runtime
// starts every few seconds.

// maxTagValue is the longest EC2 tag value, in characters.
const maxTagValue = 256

// validTagValue reports whether s may be an EC2 tag value as eipd uses it
// for eipd:group: 1 to 256 characters, each a Unicode letter or number, a
// space, or one of + - = . _ : / @ (the characters the EC2 documentation
// allows across services). Invalid UTF-8 is rejected.
func validTagValue(s string) bool {
	n := 0
	for _, r := range s {
		n++
		if n > maxTagValue {
			return false
		}
		if unicode.IsLetter(r) || unicode.IsNumber(r) {
			continue
		}
		switch r {
		case ' ', '+', '-', '=', '.', '_', ':', '/', '@':
			continue
		}
		// Includes utf8.RuneError from invalid UTF-8: U+FFFD is a symbol.
		return false
	}
	return n > 0
}

// validAllocationID reports whether s is an EIP allocation ID: eipalloc-
// followed by 8 or 17 lower-case hex digits.
func validAllocationID(s string) bool {
	const prefix = "eipalloc-"
	if len(s) <= len(prefix) || s[:len(prefix)] != prefix {
		return false
	}
	hex := s[len(prefix):]
	if len(hex) != 8 && len(hex) != 17 {
		return false
	}
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validHookName: an Auto Scaling lifecycle hook name, [A-Za-z0-9\-_\/]+ of
// at most 255 characters (Auto Scaling API reference, LifecycleHookName).
func validHookName(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_', r == '/':
		default:
			return false
		}
	}
	return true
}
