// shorten: a URL shortener that keeps its links, as JSON, in the key-value store "links".
//
//	POST /shorten        {"url": "https://example.com/a/long/path"}
//	                     201 {"code": "1", "url": "...", "short": "/shorten/1"}
//	GET  /shorten/CODE   302 to the link's URL (404 when there is none)
//	GET  /shorten        200 {"links": [{"code": ..., "url": ...}, ...]}
//	DELETE /shorten/CODE 204
//	DELETE /shorten      200 {"deleted": N}, every link (one batch delete)
//
// Codes come from an atomic counter (Increment), so two requests at once never get the
// same one. The store must be listed in the module's section:
//
//	[modules.shorten]
//	kv_stores = ["links"]
//
// Built with GOOS=wasip1 GOARCH=wasm (modules/build.sh go).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"

	"wasmgate.example/kv"
)

const store = "links"

// link is what the store keeps at "link:CODE".
type link struct {
	Code string `json:"code"`
	URL  string `json:"url"`
}

func main() {
	s, err := kv.Open(store)
	if errors.Is(err, kv.ErrDenied) {
		fail(503, fmt.Sprintf("this function keeps its links in the key-value store %q, which its [modules.shorten] section must list: kv_stores = [%q] (config/wasmgate.toml does)", store, store))
		return
	}
	if err != nil {
		fail(503, err.Error())
		return
	}
	code := strings.Trim(os.Getenv("PATH_INFO"), "/")
	switch method := os.Getenv("REQUEST_METHOD"); {
	case method == "POST" && code == "":
		create(s)
	case method == "GET" && code == "":
		list(s)
	case method == "GET":
		follow(s, code)
	case method == "DELETE" && code == "":
		deleteAll(s)
	case method == "DELETE":
		if err := s.Delete("link:" + code); err != nil {
			fail(503, err.Error())
			return
		}
		fmt.Print("Status: 204\r\n\r\n")
	default:
		fail(405, "use POST /shorten, GET /shorten[/CODE] or DELETE /shorten[/CODE]")
	}
}

func create(s kv.Store) {
	var in struct {
		URL string `json:"url"`
	}
	body, _ := io.ReadAll(os.Stdin)
	if err := json.Unmarshal(body, &in); err != nil {
		fail(400, "the body must be JSON: {\"url\": \"https://...\"}")
		return
	}
	u, err := url.Parse(in.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fail(400, "url must be an absolute http or https URL")
		return
	}
	n, err := s.Increment("next-code", 1)
	if err != nil {
		fail(503, err.Error())
		return
	}
	l := link{Code: strconv.FormatInt(n, 36), URL: u.String()}
	stored, _ := json.Marshal(l)
	if err := s.Set("link:"+l.Code, stored); err != nil {
		fail(503, err.Error())
		return
	}
	short := "/shorten/" + l.Code
	respond(201, map[string]string{"Location": short}, map[string]string{"code": l.Code, "url": l.URL, "short": short})
}

func follow(s kv.Store, code string) {
	stored, found, err := s.Get("link:" + code)
	if err != nil {
		fail(503, err.Error())
		return
	}
	var l link
	if !found || json.Unmarshal(stored, &l) != nil {
		fail(404, "no link "+strconv.Quote(code))
		return
	}
	fmt.Printf("Status: 302\r\nLocation: %s\r\n\r\n", l.URL)
}

// linkKeys is the store's keys of links.
func linkKeys(s kv.Store) ([]string, error) {
	keys, err := s.Keys()
	var links []string
	for _, k := range keys {
		if strings.HasPrefix(k, "link:") {
			links = append(links, k)
		}
	}
	return links, err
}

func deleteAll(s kv.Store) {
	keys, err := linkKeys(s)
	if err == nil && len(keys) > 0 {
		err = s.DeleteMany(keys...)
	}
	if err != nil {
		fail(503, err.Error())
		return
	}
	respond(200, nil, map[string]int{"deleted": len(keys)})
}

func list(s kv.Store) {
	wanted, err := linkKeys(s)
	if err != nil {
		fail(503, err.Error())
		return
	}
	links := []link{}
	if len(wanted) > 0 {
		values, err := s.GetMany(wanted...)
		if err != nil {
			fail(503, err.Error())
			return
		}
		for _, v := range values {
			var l link
			if v != nil && json.Unmarshal(v, &l) == nil {
				links = append(links, l)
			}
		}
	}
	sort.Slice(links, func(i, j int) bool { return len(links[i].Code) < len(links[j].Code) || (len(links[i].Code) == len(links[j].Code) && links[i].Code < links[j].Code) })
	respond(200, nil, map[string][]link{"links": links})
}

func fail(status int, message string) {
	fmt.Fprintln(os.Stderr, "shorten:", message)
	respond(status, nil, map[string]string{"error": message})
}

func respond(status int, headers map[string]string, document any) {
	fmt.Printf("Status: %d\r\nContent-Type: application/json\r\n", status)
	for k, v := range headers {
		fmt.Printf("%s: %s\r\n", k, v)
	}
	fmt.Print("\r\n")
	out, _ := json.Marshal(document)
	fmt.Println(string(out))
}
