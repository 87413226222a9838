// Calls every function of the Go bindings once, printing what each answered, in the order
// and words every language's probe uses (tests/kv_bindings/README.md).
package main

import (
	"errors"
	"fmt"
	"strings"

	"wasmgate.example/kv"
)

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func keys(s kv.Store) string {
	k, err := s.Keys()
	must(err)
	return strings.Join(k, ",")
}

func main() {
	s, err := kv.Open("s")
	must(err)
	must(s.Set("a", []byte("1")))
	fmt.Println("set ok")
	v, found, err := s.Get("a")
	must(err)
	if found {
		fmt.Println("get " + string(v))
	}
	n, err := s.Increment("n", 5)
	must(err)
	fmt.Printf("inc %d\n", n)
	must(s.SetMany(map[string][]byte{"b": []byte("2"), "c": []byte("3")}))
	fmt.Println("set_many ok")
	many, err := s.GetMany("a", "zz", "c")
	must(err)
	var shown []string
	for _, m := range many {
		if m == nil {
			shown = append(shown, "-")
		} else {
			shown = append(shown, string(m))
		}
	}
	fmt.Println("get_many " + strings.Join(shown, ","))
	fmt.Println("keys " + keys(s))
	must(s.Delete("a"))
	fmt.Println("delete ok")
	must(s.DeleteMany("b", "c"))
	fmt.Println("delete_many ok")
	fmt.Println("keys " + keys(s))
	_, found, err = s.Get("a")
	must(err)
	if !found {
		fmt.Println("get_missing none")
	}
	if _, err := kv.Open("elsewhere"); errors.Is(err, kv.ErrDenied) {
		fmt.Println("denied ok")
	}
}
