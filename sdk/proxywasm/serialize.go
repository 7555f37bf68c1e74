package proxywasm

// Header maps cross the ABI as: u32 count, count x (u32 key length, u32 value
// length), then each key and value followed by a NUL. Little endian.

// SerializeMap encodes pairs in the ABI's map format.
func SerializeMap(pairs [][2]string) []byte {
	size := 4
	for _, p := range pairs {
		size += 8 + len(p[0]) + 1 + len(p[1]) + 1
	}
	b := make([]byte, size)
	putU32(b, uint32(len(pairs)))
	off := 4
	for _, p := range pairs {
		putU32(b[off:], uint32(len(p[0])))
		putU32(b[off+4:], uint32(len(p[1])))
		off += 8
	}
	for _, p := range pairs {
		off += copy(b[off:], p[0]) + 1
		off += copy(b[off:], p[1]) + 1
	}
	return b
}

// DeserializeMap decodes the ABI's map format. Malformed input yields the
// pairs that could be read, never a panic: the bytes come from the host.
func DeserializeMap(b []byte) [][2]string {
	if len(b) < 4 {
		return nil
	}
	n := int(getU32(b))
	if n == 0 || n > (len(b)-4)/8 {
		return nil
	}
	pairs := make([][2]string, 0, n)
	data := 4 + 8*n
	for i := 0; i < n; i++ {
		kl := int(getU32(b[4+8*i:]))
		vl := int(getU32(b[8+8*i:]))
		if kl < 0 || vl < 0 || data+kl+1+vl+1 > len(b) {
			break
		}
		k := string(b[data : data+kl])
		data += kl + 1
		v := string(b[data : data+vl])
		data += vl + 1
		pairs = append(pairs, [2]string{k, v})
	}
	return pairs
}

// serializePath joins property path segments with NUL, as hosts expect.
func serializePath(path []string) []byte {
	size := 0
	for _, p := range path {
		size += len(p) + 1
	}
	if size == 0 {
		return nil
	}
	b := make([]byte, 0, size)
	for i, p := range path {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return b
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func getU32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
