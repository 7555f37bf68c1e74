package mesh

import "testing"

func TestNamespace(t *testing.T) {
	for path, want := range map[string]string{
		"/ns/default/sa/orders": "default",
		"/a/ns/b":               "b",
		"/ns":                   "",
		"/ns/":                  "",
		"/x/ns":                 "",
		"":                      "",
		"/sa/orders":            "",
	} {
		if got := (ID{TrustDomain: "td", Path: path}).Namespace(); got != want {
			t.Errorf("Namespace(%q) = %q, want %q", path, got, want)
		}
	}
	id := "spiffe://td/ns/shop/sa/orders"
	if n := testing.AllocsPerRun(100, func() { namespaceOf(id) }); n != 0 {
		t.Errorf("namespaceOf: %v allocations, want 0", n)
	}
}
