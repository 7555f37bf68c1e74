package addheader

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		config   string
		req      [][2]string
		resp     [][2]string
		errMatch string
	}{
		{name: "empty", config: ""},
		{name: "both", config: `{"request_headers":{"X-B":"2","x-a":"1"},"response_headers":{"x-served-by":"sluice"}}`,
			req: [][2]string{{"x-a", "1"}, {"x-b", "2"}}, resp: [][2]string{{"x-served-by", "sluice"}}},
		{name: "unknown key", config: `{"request_header":{"a":"b"}}`, errMatch: `unknown field "request_header"; did you mean "request_headers"?`},
		{name: "unknown key, nothing close", config: `{"zzzzzzzz":1}`, errMatch: `unknown field "zzzzzzzz"`},
		{name: "pseudo header", config: `{"request_headers":{":path":"/x"}}`, errMatch: "not a header name"},
		{name: "not json", config: `request_headers=1`, errMatch: "config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, resp, err := Parse([]byte(tc.config))
			if tc.errMatch != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errMatch) {
					t.Fatalf("err = %v, want one containing %q", err, tc.errMatch)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(req)+len(tc.req) > 0 && !reflect.DeepEqual(req, tc.req) {
				t.Errorf("request headers = %q, want %q", req, tc.req)
			}
			if len(resp)+len(tc.resp) > 0 && !reflect.DeepEqual(resp, tc.resp) {
				t.Errorf("response headers = %q, want %q", resp, tc.resp)
			}
		})
	}
}
