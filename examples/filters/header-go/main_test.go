package main

import "testing"

func TestParseConfig(t *testing.T) {
	def := config{Header: "x-hello", Value: "go", ResponseHeader: "x-filter", ResponseValue: "header-go"}
	tests := []struct {
		in      string
		want    config
		wantErr bool
	}{
		{in: "", want: def},
		{in: `{"header":"X-Team","value":"blue","response_header":""}`, want: config{Header: "x-team", Value: "blue", ResponseValue: "header-go"}},
		{in: `{"header":":path"}`, wantErr: true},
		{in: `{"response_header":":status"}`, wantErr: true},
		{in: `not json`, wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseConfig([]byte(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("parseConfig(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
		} else if !tc.wantErr && got != tc.want {
			t.Errorf("parseConfig(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
