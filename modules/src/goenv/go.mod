module wasmgate.example/goenv

go 1.21
