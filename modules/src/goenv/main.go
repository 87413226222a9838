// goenv: prints "goenv environment:" and then every environment variable the gateway gives
// the function, one KEY=VALUE a line, sorted. Built with GOOS=wasip1 GOARCH=wasm.
package main

import (
	"fmt"
	"os"
	"sort"
)

func main() {
	vars := os.Environ()
	sort.Strings(vars)
	fmt.Println("goenv environment:")
	for _, kv := range vars {
		fmt.Println(kv)
	}
}
