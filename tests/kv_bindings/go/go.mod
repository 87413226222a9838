module wasmgate.example/kvprobe

go 1.21

require wasmgate.example/kv v0.0.0

replace wasmgate.example/kv => ../../../modules/src/kv/go
