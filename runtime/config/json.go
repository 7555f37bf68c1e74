package config

import (
	"encoding/json"
	"fmt"
)

// JSON is the effective config for the admin /config page: defaults and
// mode presets applied; secrets (the Redis password) left out by their
// json:"-" tags.
func (c *Config) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding config as JSON: %w", err)
	}
	return b, nil
}
