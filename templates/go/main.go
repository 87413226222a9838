// {{name}}: a wasmgate function in Go (a WASI preview1 command, served CGI-style).
//
//	GET  /{{name}}?name=Ada            200 {"greeting": "hello, Ada"}
//	POST /{{name}}  {"name": "Ada"}    201 {"greeting": "hello, Ada"}
//	POST /{{name}}  not JSON           400 {"error": "..."}
//
// The request comes in as CGI environment variables (REQUEST_METHOD, QUERY_STRING, ...)
// and the body on stdin; the response goes out on stdout: a header block (Status:,
// Content-Type:, any header), an empty line, then the body. stderr goes to the gateway's
// log. A panic exits with status 2: the request gets a 500, the panic in the log.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
)

// greet is what a POST body may say.
type greet struct {
	Name *string `json:"name"`
}

func main() {
	method := os.Getenv("REQUEST_METHOD")
	switch method {
	case "GET", "HEAD":
		respond(200, greeting(queryName()))
	case "POST":
		name, err := readName()
		if err != nil {
			respond(400, map[string]string{"error": err.Error()})
			return
		}
		respond(201, greeting(name))
	default:
		respond(405, map[string]string{"error": "method " + method + " not allowed"})
	}
}

// queryName is the name query parameter, or "world".
func queryName() string {
	query, _ := url.ParseQuery(os.Getenv("QUERY_STRING"))
	if name := query.Get("name"); name != "" {
		return name
	}
	return "world"
}

// readName is the name of a JSON body such as {"name": "Ada"}.
func readName() (string, error) {
	body, err := io.ReadAll(os.Stdin)
	if err != nil {
		return "", fmt.Errorf("cannot read the body: %w", err)
	}
	var g greet
	if err := json.Unmarshal(body, &g); err != nil || g.Name == nil {
		return "", fmt.Errorf(`the body is not {"name": "..."}`)
	}
	return *g.Name, nil
}

func greeting(name string) map[string]string {
	fmt.Fprintf(os.Stderr, "greeted %s\n", name)
	return map[string]string{"greeting": "hello, " + name}
}

// respond writes the CGI header block, the empty line that ends it, and the JSON body.
func respond(status int, body any) {
	text, _ := json.Marshal(body)
	fmt.Printf("Status: %d\nContent-Type: application/json\nCache-Control: no-store\n\n%s\n", status, text)
}
