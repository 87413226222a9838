module wasmgate.example/kv

go 1.21
