package wasmfilter

// Node is this proxy as Envoy's bootstrap node describes it, served to
// every context (root contexts too, from proxy_on_vm_start on) as node.id,
// node.cluster and node.metadata.KEY, also under Envoy's newer xds.node.
type Node struct {
	ID       string
	Cluster  string
	Metadata map[string]any
}

// Property answers node.* paths; it is the engine's process-level
// property function.
func (n *Node) Property(path []string) ([]byte, bool) {
	if len(path) > 1 && path[0] == "xds" && path[1] == "node" {
		path = path[1:]
	}
	if n == nil || path[0] != "node" {
		return nil, false
	}
	if len(path) == 1 {
		// The whole message: its fields as pairs, as a map would be.
		return propPairs([][2]string{{"id", n.ID}, {"cluster", n.Cluster}}), true
	}
	switch path[1] {
	case "id":
		return []byte(n.ID), len(path) == 2
	case "cluster":
		return []byte(n.Cluster), len(path) == 2
	case "metadata":
		return metadataProp(n.Metadata, path[2:])
	}
	return nil, false
}
