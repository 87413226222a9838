module wasmgate.example/shorten

go 1.21

require wasmgate.example/kv v0.0.0

replace wasmgate.example/kv => ../kv/go
