package plural

import "fmt"

// N is n followed by one when n is 1, else by many: N(1, "hop", "hops") is
// "1 hop", N(0, "hop", "hops") is "0 hops". The caller gives both forms:
// English plurals are not regular enough to derive.
func N[T ~int | ~int32 | ~int64 | ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64](n T, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
