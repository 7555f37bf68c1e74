package stream

import (
	"bytes"
	"strconv"
	"testing"
)

// markNames are the names the fuzz target's operations use: the proxy's
// lookups, common request fields, pseudo-headers, other cases of some of
// them, and the empty name.
var markNames = []string{
	"connection", "te", "upgrade", "expect", "transfer-encoding",
	"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id",
	"proxy-connection", "keep-alive", "host", "user-agent", "accept",
	"content-length", "content-type", ":method", ":path", ":authority",
	":status", "Connection", "X-Forwarded-For", "TE", "keep-alivf", "",
	":scheme", ":METHOD", ":Path", ":protocol", ":methoe",
}

// modelField is what the reference model keeps of a field.
type modelField struct {
	name, value string
	checked     bool
}

// model is the plain list a HeaderMap must behave as: pseudo-headers
// first, names compared in any ASCII case, every lookup a scan.
type model []modelField

func (m model) index(name string) int {
	for i, f := range m {
		if EqualFold([]byte(f.name), name) {
			return i
		}
	}
	return -1
}

func (m model) insert(f modelField) model {
	if len(f.name) > 0 && f.name[0] == ':' {
		p := 0
		for p < len(m) && len(m[p].name) > 0 && m[p].name[0] == ':' {
			p++
		}
		return append(m[:p], append(model{f}, m[p:]...)...)
	}
	return append(m, f)
}

func (m model) del(name string, from int) model {
	out := append(model(nil), m[:from]...) // m itself stays as it is
	for _, f := range m[from:] {
		if !EqualFold([]byte(f.name), name) {
			out = append(out, f)
		}
	}
	return out
}

func lowerString(s string) string { return string(bytes.ToLower([]byte(s))) }

// FuzzHeaderMapChecked runs a sequence of every mutator on a map and on
// the model, and checks after each step that the fields and every lookup
// agree, and that a field is Checked exactly when AddParsed or
// AddChecked put it there, or AddClean with a value without CTLs, and nothing replaced or moved it since: a
// writer trusts the mark to skip its own check of the field's bytes.
func FuzzHeaderMapChecked(f *testing.F) {
	f.Add([]byte{0, 0, 1, 1, 3, 0, 4, 1, 2, 20})
	f.Add([]byte{1, 0, 0, 1, 1, 2, 4, 1}) // a marked field moves down
	f.Add([]byte{1, 0, 0, 1, 4, 0})       // an unmarked one takes a mark's place
	f.Add([]byte{1, 16, 1, 17, 1, 0, 3, 16, 7, 0, 9, 0, 4, 20, 8, 0, 1, 11})
	f.Add([]byte{5, 22, 6, 9, 1, 10, 1, 23, 7, 10, 2, 21, 4, 0, 9, 3, 6, 24, 1, 24})
	f.Add([]byte{1, 5, 1, 6, 1, 7, 1, 8, 3, 19, 2, 1, 4, 5, 9, 9, 8, 8, 1, 2})
	// Pseudo-headers repeated, removed, replaced in another case and
	// moved by a removal before them: the handles of :method and the
	// others (HeaderMap.at) must follow.
	f.Add([]byte{0, 16, 0, 17, 0, 28, 0, 16, 0, 25, 4, 17, 3, 26, 7, 28, 6, 16, 0, 18, 9, 0, 4, 16, 2, 27, 8, 0, 0, 19})
	f.Add([]byte{0, 28, 2, 16, 5, 17, 1, 25, 4, 28, 3, 19, 7, 16, 0, 16, 3, 16})
	// AddChecked among the others: marked like AddParsed, moved by a
	// pseudo-header insert, unmarked by a Set.
	f.Add([]byte{10, 5, 10, 6, 0, 16, 10, 25, 3, 6, 10, 5, 7, 5, 9, 0, 10, 7})
	// AddPseudo first, after regular fields, repeated, then removed.
	f.Add([]byte{11, 0, 11, 1, 1, 5, 11, 2, 11, 0, 7, 16, 11, 3, 3, 17, 9, 0, 11, 4, 4, 18})
	f.Add([]byte{11, 0, 11, 1, 11, 0, 11, 3, 11, 1, 4, 16})
	// AddClean with clean values, a HTAB, a CRLF and a DEL.
	f.Add([]byte{12, 5, 12, 70, 12, 134, 12, 199, 0, 16, 12, 16, 3, 5, 12, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		var h HeaderMap
		var m model
		hp := &h
		for k := 0; k+1 < len(ops) && k < 400; k += 2 {
			name := markNames[int(ops[k+1])%len(markNames)]
			lname := lowerString(name)
			value := "v" + strconv.Itoa(k)
			switch ops[k] % 13 {
			case 0:
				hp.AddRaw([]byte(lname), []byte(value))
				m = m.insert(modelField{lname, value, false})
			case 1:
				hp.AddParsed([]byte(lname), []byte(value))
				// Only regular fields are marked.
				m = m.insert(modelField{lname, value, lname == "" || lname[0] != ':'})
			case 2, 5:
				if ops[k]%10 == 2 {
					hp.Add(name, value)
				} else {
					hp.AddBytes([]byte(name), []byte(value))
				}
				m = m.insert(modelField{lname, value, false})
			case 3, 6:
				if ops[k]%10 == 3 {
					hp.Set(name, value)
				} else {
					hp.SetBytes([]byte(name), []byte(value))
				}
				if i := m.index(name); i >= 0 {
					m[i] = modelField{lname, value, false}
					m = m.del(name, i+1)
				} else {
					m = m.insert(modelField{lname, value, false})
				}
			case 4, 7:
				if ops[k]%10 == 4 {
					hp.Del(name)
				} else {
					hp.DelBytes([]byte(name))
				}
				m = m.del(name, 0)
			case 8:
				hp.Reset()
				m = m[:0]
			case 9:
				hp = hp.Clone()
			case 11:
				// A codec's pseudo-header, by its handle.
				p := int(ops[k+1]) % len(pseudoNames)
				hp.AddPseudo(Pseudo(p), []byte(value))
				m = m.insert(modelField{pseudoNames[p], value, false})
			case 10:
				// A field its caller vouches for: lower-case names only.
				hp.AddChecked([]byte(lname), []byte(value))
				m = m.insert(modelField{lname, value, lname == "" || lname[0] != ':'})
			case 12:
				// A value checked by the map: marked only when clean (a
				// HTAB is allowed, a CR is not).
				switch ops[k+1] >> 6 {
				case 1:
					value += "\tx"
				case 2:
					value += "\r\nx: y"
				case 3:
					value = "\x7f" + value
				}
				hp.AddClean([]byte(lname), []byte(value))
				m = m.insert(modelField{lname, value, (lname == "" || lname[0] != ':') && ops[k+1]>>6 < 2})
			}
			for i := 64; i < len(m); i++ {
				m[i].checked = false // marks are kept for the first 64 fields only
			}
			if hp.Len() != len(m) {
				t.Fatalf("step %d: %d fields, model has %d", k/2, hp.Len(), len(m))
			}
			for i, want := range m {
				n, v := hp.At(i)
				if string(n) != want.name || string(v) != want.value || hp.Checked(i) != want.checked {
					t.Fatalf("step %d field %d: %s=%s checked %v, want %+v", k/2, i, n, v, hp.Checked(i), want)
				}
			}
			for p, q := range pseudoNames {
				i := m.index(q)
				v, ok := hp.GetPseudo(Pseudo(p))
				if ok != (i >= 0) || ok && string(v) != m[i].value {
					t.Fatalf("step %d: GetPseudo(%q) = %q %v, model has it at %d", k/2, q, v, ok, i)
				}
			}
			for _, q := range markNames {
				i := m.index(q)
				v, ok := hp.Get(q)
				vb, okb := hp.GetBytes([]byte(q))
				if ok != (i >= 0) || okb != ok || hp.Has(q) != ok {
					t.Fatalf("step %d: lookup of %q says present=%v, model %v", k/2, q, ok, i >= 0)
				}
				if ok && (string(v) != m[i].value || string(vb) != m[i].value) {
					t.Fatalf("step %d: Get(%q) = %q, want %q", k/2, q, v, m[i].value)
				}
				n := 0
				for range hp.Values(q) {
					n++
				}
				if want := len(m) - len(m.del(q, 0)); n != want {
					t.Fatalf("step %d: Values(%q) yields %d, want %d", k/2, q, n, want)
				}
			}
		}
	})
}
