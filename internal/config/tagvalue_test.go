package config

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"pgregory.net/rapid"
)

// The rules as regular expressions: the reference the hand-written
// validators must agree with (compiled here, in the test binary only).
var (
	tagValueRE     = regexp.MustCompile(`^[\p{L}\p{N} +\-=._:/@]{1,256}$`)
	allocationIDRE = regexp.MustCompile(`^eipalloc-([0-9a-f]{8}|[0-9a-f]{17})$`)
)

func TestValidTagValue(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"web", true},
		{"web-prod", true},
		{"a", true},
		{"A Z", true},
		{"0123456789", true},
		{"+-=._:/@", true},
		{"team/web @ eu-west-1: prod=1 + 2_x.y", true},
		{"café", true},         // Latin letter with an accent
		{"Ünïcödé", true},      // more of them
		{"производство", true}, // Cyrillic
		{"本番環境", true},         // CJK letters (Lo)
		{"ウェブ", true},          // Katakana
		{"عربي", true},         // Arabic
		{"ⅻ²½", true},          // numbers that are not digits: Nl, No
		{"٣", true},            // Arabic-Indic digit (Nd)
		{strings.Repeat("x", 256), true},
		{strings.Repeat("é", 256), true}, // 256 characters, 512 bytes
		{"", false},
		{strings.Repeat("x", 257), false},
		{strings.Repeat("é", 257), false},
		{"web\tprod", false},
		{"web\nprod", false},
		{"web,prod", false},
		{"web;prod", false},
		{"web*", false},
		{"a#b", false},
		{"a!b", false},
		{"(web)", false},
		{"a\"b", false},
		{"a'b", false},
		{"a\\b", false},
		{"a%b", false},
		{"a$b", false},
		{"😀", false},        // a symbol, not a letter
		{"a\u00a0b", false}, // no-break space is not a space here
		{"\ufffd", false},   // the replacement character is a symbol
		{"a\xffb", false},   // invalid UTF-8
		{"\xc3", false},     // truncated UTF-8
		{"a\x00b", false},
		{"\u0301", false}, // a lone combining mark (Mn) is neither letter nor number
	}
	for _, tt := range tests {
		if got := validTagValue(tt.in); got != tt.want {
			t.Errorf("validTagValue(%q) = %v, want %v", tt.in, got, tt.want)
		}
		if re := tagValueRE.MatchString(tt.in); re != tt.want {
			t.Errorf("reference regexp on %q = %v; the table is wrong", tt.in, re)
		}
	}
}

// The hand-written validator accepts exactly what the regexp accepted, on
// arbitrary strings: mostly characters near the edges of the allowed set,
// lengths around 256, and some invalid UTF-8.
func TestValidTagValueMatchesRegexp(t *testing.T) {
	interesting := []rune{'a', 'Z', '0', '9', ' ', '+', '-', '=', '.', '_', ':', '/', '@',
		',', ';', '\t', '!', '#', '*', 'é', 'ж', '本', '½', 'Ⅻ', '\u0301', '\u00a0', '😀', utf8.RuneError, 0}
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.SampledFrom([]int{0, 1, 2, 5, 255, 256, 257}).Draw(t, "n")
		var b strings.Builder
		for i := 0; i < n; i++ {
			switch rapid.IntRange(0, 9).Draw(t, "kind") {
			case 0:
				b.WriteRune(rapid.Rune().Draw(t, "any"))
			case 1:
				b.WriteByte(byte(rapid.IntRange(0x80, 0xff).Draw(t, "bad byte")))
			case 2, 3:
				b.WriteRune(rapid.SampledFrom(interesting).Draw(t, "edge"))
			default:
				b.WriteByte(byte(rapid.IntRange('a', 'z').Draw(t, "letter")))
			}
		}
		s := b.String()
		if got, want := validTagValue(s), tagValueRE.MatchString(s); got != want {
			t.Fatalf("validTagValue(%q) = %v, regexp says %v", s, got, want)
		}
	})
}

func TestValidAllocationID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"eipalloc-0123abcd", true},
		{"eipalloc-0123456789abcdef0", true},
		{"eipalloc-", false},
		{"eipalloc-0123abc", false},            // 7
		{"eipalloc-0123abcde", false},          // 9
		{"eipalloc-0123456789abcdef", false},   // 16
		{"eipalloc-0123456789abcdef01", false}, // 18
		{"eipalloc-0123ABCD", false},
		{"eipalloc-0123abcg", false},
		{"eipassoc-0123abcd", false},
		{"203.0.113.7", false},
		{" eipalloc-0123abcd", false},
		{"eipalloc-0123abcd ", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := validAllocationID(tt.in); got != tt.want {
			t.Errorf("validAllocationID(%q) = %v, want %v", tt.in, got, tt.want)
		}
		if re := allocationIDRE.MatchString(tt.in); re != tt.want {
			t.Errorf("reference regexp on %q = %v; the table is wrong", tt.in, re)
		}
	}
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.SampledFrom([]string{"eipalloc-", "eipalloc", "eipassoc-", ""}).Draw(t, "prefix") +
			rapid.StringOfN(rapid.SampledFrom([]rune("0123456789abcdefABCDg-é")), 0, 19, -1).Draw(t, "rest")
		if got, want := validAllocationID(s), allocationIDRE.MatchString(s); got != want {
			t.Fatalf("validAllocationID(%q) = %v, regexp says %v", s, got, want)
		}
	})
}
