package config

import (
	"fmt"
	"reflect"
)

// RestartNeeded lists the settings that differ between old and cur but
// cannot change without a restart, by key ("mode", "admin",
// "listeners[public]", ...); empty when cur can be applied hot.
//
// Hot: routes, clusters, plugins, services (their routes and clusters),
// sidecar.app_protocol (the app cluster's protocol), the path keys of
// [server] and listeners (path_normalization and the two beside it, read
// per request from the snapshot), a listener's stream_idle_timeout,
// authorization, and a listener's routes and plugins lists, since route
// tables and filter chains are rebuilt per snapshot. Restart: mode, admin,
// server, shared_store, wasm, access_log, identity, node, sidecar, and every
// other listener field (address, protocols, tls, limits), since those are
// bound to sockets and process-wide objects made once at start.
func RestartNeeded(old, cur *Config) []string {
	var out []string
	diff := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, key)
		}
	}
	diff("mode", old.Mode, cur.Mode)
	diff("admin", old.Admin, cur.Admin)
	diff("server", withoutPathPolicy(old.Server), withoutPathPolicy(cur.Server))
	diff("shared_store", old.SharedStore, cur.SharedStore)
	diff("wasm", old.Wasm, cur.Wasm)
	diff("access_log", old.AccessLog, cur.AccessLog)
	diff("identity", old.Identity, cur.Identity)
	diff("node", old.Node, cur.Node)
	// app_protocol only shapes the generated app cluster, rebuilt hot.
	diff("sidecar", withoutAppProtocol(old.Sidecar), withoutAppProtocol(cur.Sidecar))

	byName := func(ls []Listener) map[string]Listener {
		m := make(map[string]Listener, len(ls))
		for _, l := range ls {
			l.Routes, l.Plugins, l.StreamIdleTimeout = nil, nil, nil // hot
			l.PathNormalization, l.PathWithEscapedSlashes, l.PathParameters = "", "", ""
			m[l.Name] = l
		}
		return m
	}
	was, now := byName(old.Listeners), byName(cur.Listeners)
	for _, l := range cur.Listeners {
		prev, ok := was[l.Name]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("listeners[%s] (added)", l.Name))
		case !reflect.DeepEqual(prev, now[l.Name]):
			out = append(out, fmt.Sprintf("listeners[%s]", l.Name))
		}
	}
	for _, l := range old.Listeners {
		if _, ok := now[l.Name]; !ok {
			out = append(out, fmt.Sprintf("listeners[%s] (removed)", l.Name))
		}
	}
	return out
}

func withoutAppProtocol(sc *Sidecar) *Sidecar {
	if sc == nil {
		return nil
	}
	c := *sc
	c.AppProtocol = ""
	return &c
}

// withoutPathPolicy clears the path keys, which apply hot.
func withoutPathPolicy(s Server) Server {
	s.PathNormalization, s.PathWithEscapedSlashes, s.PathParameters = "", "", ""
	return s
}
