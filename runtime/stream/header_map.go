// Package stream is the protocol-neutral model every codec produces and
// consumes: a header map of lower-case names with HTTP/2's pseudo-headers,
// as Envoy's HeaderMap and HTTP/2's header list are.
package stream

import (
	"encoding/binary"
	"iter"
)

// The pseudo-headers of RFC 9113 section 8.3. An HTTP/1.1 codec fills
// them from the request line and Host, and from the status line.
const (
	Method    = ":method"
	Path      = ":path"
	Authority = ":authority"
	Scheme    = ":scheme"
	Status    = ":status"
)

// Field is one header field. Name is lower-case ASCII.
type Field struct {
	Name, Value []byte
}

// HeaderMap is an ordered list of header fields. Pseudo-headers come first;
// regular fields keep the order they were added in; a name may repeat.
//
// Fields added with AddRaw are slices of a buffer the caller owns (a
// codec's read buffer) and are valid only as long as that buffer is; the
// other mutators copy into the map's own arena, which Reset keeps for
// reuse, so a reused map does not allocate once it has grown.
//
// The zero value is an empty map ready to use. A HeaderMap is not safe for
// concurrent use.
type HeaderMap struct {
	fields []Field
	arena  []byte
	pseudo int // fields[:pseudo] are pseudo-headers
	// checked has bit i set when fields[i] came from AddParsed, AddChecked
	// or AddClean (a clean value) and has
	// not been replaced since (only the first 64 fields are marked; a
	// writer checks the others again). The mark is not kept in Field: a
	// larger Field made every append and copy of fields dearer.
	checked uint64
	// at[k] is one more than the place of the first field named
	// pseudoNames[k] (0: none): the proxy and the codecs ask for
	// :method, :path, :authority, :scheme and :status a dozen times a
	// request, and a scan for each was a tenth of the map's work. As
	// Envoy's inline handles for well-known headers, kept by every
	// mutator (insert, delFrom, Reset, Clone; Set replaces a field in
	// its place) and held to a scan by FuzzHeaderMapChecked.
	at [len(pseudoNames)]int32
}

// Pseudo names a pseudo-header for GetPseudo.
type Pseudo uint8

// The pseudo-headers GetPseudo finds, in pseudoNames' order.
const (
	PseudoMethod Pseudo = iota
	PseudoPath
	PseudoAuthority
	PseudoScheme
	PseudoStatus
)

// pseudoNames are the pseudo-headers HeaderMap.at tracks, by Pseudo;
// pseudoNameBytes the same as the names AddPseudo gives its fields.
var (
	pseudoNames     = [...]string{Method, Path, Authority, Scheme, Status}
	pseudoNameBytes = [...][]byte{[]byte(Method), []byte(Path), []byte(Authority), []byte(Scheme), []byte(Status)}
)

// pseudoSlot is name's index in pseudoNames, or -1 (for any other name,
// and for a pseudo-header's name in another case, which a scan finds).
func pseudoSlot[S ~string | ~[]byte](name S) int {
	switch len(name) {
	case len(Path):
		if string(name) == Path {
			return 1
		}
	case len(Method): // and Scheme, Status
		switch string(name) {
		case Method:
			return 0
		case Scheme:
			return 3
		case Status:
			return 4
		}
	case len(Authority):
		if string(name) == Authority {
			return 2
		}
	}
	return -1
}

// Len is the number of fields, pseudo-headers included.
func (h *HeaderMap) Len() int { return len(h.fields) }

// At is field i, 0 <= i < Len(). The slices must not be modified.
func (h *HeaderMap) At(i int) (name, value []byte) {
	f := &h.fields[i]
	return f.Name, f.Value
}

// All yields every field in order.
func (h *HeaderMap) All() iter.Seq2[[]byte, []byte] {
	return func(yield func(name, value []byte) bool) {
		for i := range h.fields {
			if !yield(h.fields[i].Name, h.fields[i].Value) {
				return
			}
		}
	}
}

// Reset empties the map, keeping its storage.
func (h *HeaderMap) Reset() {
	clear(h.fields) // drop references into buffers the map no longer owns
	h.fields = h.fields[:0]
	h.arena = h.arena[:0]
	h.pseudo = 0
	h.checked = 0
	h.at = [len(pseudoNames)]int32{}
}

// Get is the first value of name (matched without regard to ASCII case).
func (h *HeaderMap) Get(name string) ([]byte, bool) {
	if i := h.index(name, 0); i >= 0 {
		return h.fields[i].Value, true
	}
	return nil, false
}

// GetPseudo is Get(pseudoNames[p]) (GetPseudo(PseudoMethod) is
// Get(":method")) without a lookup: the codecs, the router and the proxy
// ask for the request's method, path, authority and scheme and the
// response's status some fifteen times a request, and even Get's short
// way to them was a call and a comparison of names each.
func (h *HeaderMap) GetPseudo(p Pseudo) ([]byte, bool) {
	if i := h.at[p]; i > 0 {
		return h.fields[i-1].Value, true
	}
	return nil, false
}

// Values yields every value of name in order.
func (h *HeaderMap) Values(name string) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for i := h.index(name, 0); i >= 0; i = h.index(name, i+1) {
			if !yield(h.fields[i].Value) {
				return
			}
		}
	}
}

// Has says whether name is present.
func (h *HeaderMap) Has(name string) bool { return h.index(name, 0) >= 0 }

// AddRaw appends a field without copying: name must already be lower-case
// and both slices must outlive the map's use (see HeaderMap). It is the
// codecs' path; everything else uses Add.
func (h *HeaderMap) AddRaw(name, value []byte) {
	h.insert(Field{Name: name, Value: value})
}

// AddPseudo is AddRaw(name, value) for the pseudo-header p names: a
// codec's request line and status line, whose pseudo-headers come
// first. It need not look at a name to find p's handle (insert's
// comparison of it was some 40 instructions a field).
func (h *HeaderMap) AddPseudo(p Pseudo, value []byte) {
	if h.pseudo != len(h.fields) {
		h.insert(Field{Name: pseudoNameBytes[p], Value: value}) // after regular fields
		return
	}
	if h.at[p] == 0 {
		h.at[p] = int32(h.pseudo) + 1
	}
	h.pseudo++
	h.fields = append(h.fields, Field{Name: pseudoNameBytes[p], Value: value})
}

// AddParsed is AddRaw for a regular field its codec has checked as a
// writer would (a token name, a value without CTLs), so that a writer can
// skip checking it again (Checked). The mark belongs to this field as
// added: a field that replaces it (Set) does not carry it, and the
// slices must not change while the map holds them (as for AddRaw).
func (h *HeaderMap) AddParsed(name, value []byte) {
	i := len(h.fields)
	if i >= 64 || len(name) > 0 && name[0] == ':' {
		h.insert(Field{Name: name, Value: value}) // not marked
		return
	}
	// A regular field goes at the end: insert's append, without the call
	// (insert, with the pseudo-headers' case, is not inlined), for the
	// codec's path.
	h.checked |= 1 << i
	h.fields = append(h.fields, Field{Name: name, Value: value})
}

// AddChecked is Add for a field whose bytes its caller made and vouches
// for as AddParsed's codec does: name a lower-case token (a constant),
// value without CTLs (an id it formatted, a scheme it compared). The
// value is copied; the name is kept as given, never copied: it must be
// a constant of the caller's, a package-level slice nothing writes to
// (as the pseudo-headers' names are), which a copy into the arena only
// duplicated (some 45 instructions a field). Neither is looked at, and a
// regular field is marked as AddParsed marks it, so that a writer does
// not check it either. The proxy adds its own fields (x-request-id,
// x-forwarded-proto) so: the checks of a name's case and of both at
// writing were some 150 instructions a field.
func (h *HeaderMap) AddChecked(name, value []byte) {
	start := len(h.arena)
	h.arena = append(h.arena, value...)
	// Three-index slices: a later append to the arena or to the name
	// never shows through.
	f := Field{Name: name[:len(name):len(name)], Value: h.arena[start:len(h.arena):len(h.arena)]}
	i := len(h.fields)
	if i >= 64 || len(name) > 0 && name[0] == ':' {
		h.insert(f) // not marked
		return
	}
	h.checked |= 1 << i
	h.fields = append(h.fields, f)
}

// AddClean is AddChecked for a value its caller did not make itself (a
// client's address, a request's authority): the value is checked here
// (HasCTL) and the field marked only when it is clean; one with a CTL is
// added unmarked, for a writer to refuse as it would an Add's. The name
// is vouched for as AddChecked's. The proxy's X-Forwarded-For and
// X-Forwarded-Host: Add's copy, its name's case check and a writer's
// checks of name and value were some 600 instructions a field.
func (h *HeaderMap) AddClean(name, value []byte) {
	if HasCTL(value) {
		h.addUnmarked(name, value)
		return
	}
	h.AddChecked(name, value)
}

// addUnmarked is AddClean's field with a CTL, copied and not marked. Out
// of line: a clean value never takes it, and its copy's appends made
// AddClean's frame larger.
//
//go:noinline
func (h *HeaderMap) addUnmarked(name, value []byte) {
	h.insert(copyField(h, name, value))
}

// Checked says whether field i came from AddParsed or AddChecked and was
// not replaced since: its name is a token and its value holds no CTL.
func (h *HeaderMap) Checked(i int) bool { return i < 64 && h.checked>>i&1 != 0 }

// Add appends a field, copying name (lower-cased) and value.
func (h *HeaderMap) Add(name, value string) {
	h.insert(h.own(name, value))
}

// Set replaces every value of name with one value.
func (h *HeaderMap) Set(name, value string) {
	i := h.index(name, 0)
	if i < 0 {
		h.Add(name, value)
		return
	}
	h.fields[i] = h.own(name, value)
	h.checked &^= 1 << i
	h.delFrom(name, i+1)
}

// Del removes every field called name.
func (h *HeaderMap) Del(name string) { h.delFrom(name, 0) }

// GetBytes, AddBytes, SetBytes and DelBytes are Get, Add, Set and Del for
// names and values held as bytes (a Wasm guest's memory): nothing is
// converted, and the arguments are copied (lower-cased name) only by Add
// and Set, so they may be reused once the call returns.

// GetBytes is the first value of name (matched without regard to ASCII
// case).
func (h *HeaderMap) GetBytes(name []byte) ([]byte, bool) {
	if i := index(h, name, 0); i >= 0 {
		return h.fields[i].Value, true
	}
	return nil, false
}

// AddBytes appends a field, copying name (lower-cased) and value.
func (h *HeaderMap) AddBytes(name, value []byte) {
	h.insert(own(h, name, value, hasUpperBytes(name)))
}

// SetBytes replaces every value of name with one value.
func (h *HeaderMap) SetBytes(name, value []byte) {
	i := index(h, name, 0)
	if i < 0 {
		h.AddBytes(name, value)
		return
	}
	h.fields[i] = own(h, name, value, hasUpperBytes(name))
	h.checked &^= 1 << i
	delFrom(h, name, i+1)
}

// DelBytes removes every field called name.
func (h *HeaderMap) DelBytes(name []byte) { delFrom(h, name, 0) }

// Clone is a deep copy that owns all its bytes: what a stream keeps once
// the codec's buffer moves on.
func (h *HeaderMap) Clone() *HeaderMap {
	n := 0
	for i := range h.fields {
		n += len(h.fields[i].Name) + len(h.fields[i].Value)
	}
	c := &HeaderMap{fields: make([]Field, 0, len(h.fields)), arena: make([]byte, 0, n), pseudo: h.pseudo, checked: h.checked, at: h.at}
	for i := range h.fields {
		c.fields = append(c.fields, copyField(c, h.fields[i].Name, h.fields[i].Value))
	}
	return c
}

// copyField copies name and value into the arena as they are. When the
// arena grows, fields already handed out keep pointing at the old array,
// which stays valid and unchanged.
func copyField[S ~string | ~[]byte](h *HeaderMap, name S, value []byte) Field {
	start := len(h.arena)
	h.arena = append(h.arena, name...)
	mid := len(h.arena)
	h.arena = append(h.arena, value...)
	// Three-index slices: a later append to the arena never shows through.
	return Field{Name: h.arena[start:mid:mid], Value: h.arena[mid:len(h.arena):len(h.arena)]}
}

// own copies name (lower-cased) and value into the arena. When the arena
// grows, fields already handed out keep pointing at the old array, which
// stays valid and unchanged.
func (h *HeaderMap) own(name, value string) Field { return own(h, name, value, hasUpperString(name)) }

// own, index and delFrom are generic over the name's form so the string
// and the []byte methods share one implementation. own is told whether
// name has upper case by its caller, which knows the form: the test of
// eight bytes at a time is a load each in hasUpperString and
// hasUpperBytes, and eight in generic code.
func own[S ~string | ~[]byte](h *HeaderMap, name, value S, upper bool) Field {
	// Copied whole and lowered in place: an append per byte was a
	// capacity check per byte, and this runs for every field the proxy
	// sets on every request. The name is looked at where it comes from
	// (a constant, mostly, already lower-case) rather than read back from
	// the arena: a connection's arena is cold when its next request
	// comes, and the copy's stores go by without waiting for its cache
	// lines, where loads of them wait (a profile put a third of own's
	// time on the first load back).
	start := len(h.arena)
	h.arena = append(h.arena, name...)
	mid := len(h.arena)
	if upper {
		for i := start; i < mid; i++ {
			h.arena[i] = lower(h.arena[i])
		}
	}
	h.arena = append(h.arena, value...)
	return Field{Name: h.arena[start:mid:mid], Value: h.arena[mid:len(h.arena):len(h.arena)]}
}

// insert keeps pseudo-headers ahead of regular fields.
func (h *HeaderMap) insert(f Field) {
	if len(f.Name) > 0 && f.Name[0] == ':' {
		// A pseudo-header goes at fields[pseudo]: the first of its name
		// unless one is there already (those before it do not move).
		if k := pseudoSlot(f.Name); k >= 0 && h.at[k] == 0 {
			h.at[k] = int32(h.pseudo) + 1
		}
	}
	if len(f.Name) == 0 || f.Name[0] != ':' || h.pseudo == len(h.fields) {
		if len(f.Name) > 0 && f.Name[0] == ':' {
			h.pseudo++
		}
		h.fields = append(h.fields, f)
		return
	}
	h.fields = append(h.fields, Field{})
	copy(h.fields[h.pseudo+1:], h.fields[h.pseudo:])
	h.fields[h.pseudo] = f
	// The regular fields moved up one, and their marks with them (the
	// proxy adds :scheme after a codec's fields).
	below := uint64(1)<<h.pseudo - 1
	h.checked = h.checked&below | (h.checked&^below)<<1
	h.pseudo++
}

func (h *HeaderMap) index(name string, from int) int { return index(h, name, from) }

func index[S ~string | ~[]byte](h *HeaderMap, name S, from int) int {
	// Pseudo-headers are fields[:pseudo] and only they: a lookup looks
	// at its own part (the proxy asks for a pseudo-header or a field
	// dozens of times a request).
	end := len(h.fields)
	if len(name) > 0 && name[0] == ':' {
		if from == 0 {
			if k := pseudoSlot(name); k >= 0 {
				return int(h.at[k]) - 1
			}
		}
		end = h.pseudo
	} else {
		from = max(from, h.pseudo)
	}
	// equalFold, with names of one length told apart by their last byte
	// first: the pseudo-headers of seven bytes (:method, :scheme,
	// :status) and many field names differ there, and comparing whole
	// names is a call (a profile counted 23 a request, a third of them
	// for names that differ). Written out here: equalFold with it is not
	// inlined.
	n := len(name)
	for i := from; i < end; i++ {
		s := h.fields[i].Name
		if len(s) != n || n > 0 && s[n-1] != name[n-1] && s[n-1] != lower(name[n-1]) {
			continue
		}
		if string(s) == string(name) || foldEqual(s, name) {
			return i
		}
	}
	return -1
}

func (h *HeaderMap) delFrom(name string, from int) { delFrom(h, name, from) }

func delFrom[S ~string | ~[]byte](h *HeaderMap, name S, from int) {
	// Most calls find nothing (a Set's search for duplicates, a Del of
	// an absent field): index looks at the name's part of the map only.
	first := index(h, name, from)
	if first < 0 {
		return
	}
	out, pseudo := first, h.pseudo
	checked := h.checked & (uint64(1)<<first - 1)
	for i := first; i < len(h.fields); i++ {
		if equalFold(h.fields[i].Name, name) {
			if i < pseudo {
				h.pseudo--
			}
			continue
		}
		h.fields[out] = h.fields[i]
		checked |= (h.checked >> i & 1) << out // a kept field keeps its mark
		out++
	}
	// The fields removed are zeroed (no references kept into buffers
	// the map no longer owns) one by one: mostly one (a response's
	// Connection), where clear's call was some 50 instructions.
	for k := out; k < len(h.fields); k++ {
		h.fields[k] = Field{}
	}
	h.fields = h.fields[:out]
	h.checked = checked
	if first < pseudo {
		// Pseudo-headers went or moved down: find the first of each
		// again (a few fields; filters remove them seldom).
		h.at = [len(pseudoNames)]int32{}
		for i := h.pseudo - 1; i >= 0; i-- {
			if k := pseudoSlot(h.fields[i].Name); k >= 0 {
				h.at[k] = int32(i) + 1
			}
		}
	}
}

// equalFold compares a stored (lower-case) name with a name in any case.
// Most names looked up are lower-case already (the proxy's constants): a
// plain comparison of the bytes settles those, and the fold byte by byte
// (which took a tenth of a proxied request's instructions) is left for the
// others.
func equalFold[S ~string | ~[]byte](stored []byte, name S) bool {
	return len(stored) == len(name) && (string(stored) == string(name) || foldEqual(stored, name))
}

// foldEqual is equalFold's byte-by-byte part, for names of one length.
func foldEqual[S ~string | ~[]byte](stored []byte, name S) bool {
	for i := 0; i < len(name); i++ {
		if stored[i] != lower(name[i]) {
			return false
		}
	}
	return true
}

// EqualFold says b and s are the same in any ASCII case: header names
// and tokens are ASCII, so bytes beyond it only match themselves.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	if string(b) == s {
		// The common case (a lower-case token against a lower-case
		// constant): one comparison, not two lower-casings a byte.
		return true
	}
	for i := 0; i < len(s); i++ {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

// hasUpperString says whether s holds an upper-case ASCII letter. It
// runs on every name the proxy adds (x-forwarded-*, x-request-id, ...):
// eight bytes a turn, where a byte at a time was some 600 instructions a
// request.
func hasUpperString(s string) bool {
	n := len(s)
	if n < 8 {
		for i := 0; i < n; i++ {
			if 'A' <= s[i] && s[i] <= 'Z' {
				return true
			}
		}
		return false
	}
	// Whole words and the word ending at s's end (which may overlap the
	// one before: a byte looked at twice is no harm).
	m := upperMask(stringWord(s[n-8:]))
	for i := 0; i+8 <= n; i += 8 {
		m |= upperMask(stringWord(s[i:]))
	}
	return m != 0
}

// stringWord is the first eight bytes of s, little-endian: one load.
func stringWord(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// hasUpperBytes is hasUpperString for a name held as bytes (a Wasm
// guest's).
func hasUpperBytes(s []byte) bool {
	n := len(s)
	if n < 8 {
		for _, c := range s {
			if 'A' <= c && c <= 'Z' {
				return true
			}
		}
		return false
	}
	m := upperMask(binary.LittleEndian.Uint64(s[n-8:]))
	for i := 0; i+8 <= n; i += 8 {
		m |= upperMask(binary.LittleEndian.Uint64(s[i : i+8 : i+8]))
	}
	return m != 0
}

// upperMask has the high bit of each byte of w set where the byte is
// 'A'-'Z', and no other bit. On a byte's low seven bits a: a+0x3f
// reaches 0x80 exactly when a >= 'A', a+0x25 exactly when a > 'Z';
// neither carries into the next byte. Bytes of 0x80 and above are
// masked out by w's own high bit.
func upperMask(w uint64) uint64 {
	a := w &^ highs
	return (a + 0x3f*ones) &^ (a + 0x25*ones) &^ w & highs
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
