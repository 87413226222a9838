;; watenv: prints "watenv environment:" and then every environment variable the gateway
;; gives it, one KEY=VALUE a line, and greets the gateway's log through env.log_string
;; (and logs how many variables it got through env.log_i32).
;;
;; The guest contract in one module: the request arrives as environment variables
;; (CGI/1.1 names, HTTP_* headers, the seed's lowercase names) and stdout is the response.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "env" "log_string" (func $log_string (param i32 i32)))
  (import "env" "log_i32" (func $log_i32 (param i32)))
  (memory (export "memory") 1)
  ;; 0..31: scratch (iovecs, counts); 64: newline; 128: banner; 192: log message
  (data (i32.const 64) "\n")
  (data (i32.const 128) "watenv environment:")
  (data (i32.const 192) "watenv says hello to the log")
  ;; Writes ptr[0..len] and a newline.
  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 1))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16))))
  (func $strlen (param $p i32) (result i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $i))
  (func (export "_start")
    (local $count i32) (local $size i32) (local $ptrs i32) (local $buf i32) (local $need i32) (local $i i32)
    (call $log_string (i32.const 192) (i32.const 28))
    (drop (call $environ_sizes_get (i32.const 20) (i32.const 24)))
    (local.set $count (i32.load (i32.const 20)))
    (local.set $size (i32.load (i32.const 24)))
    (call $log_i32 (local.get $count))
    ;; pointers at 4096, strings right after them; grow memory to fit
    (local.set $ptrs (i32.const 4096))
    (local.set $buf (i32.add (local.get $ptrs) (i32.mul (local.get $count) (i32.const 4))))
    (local.set $need (i32.add (local.get $buf) (local.get $size)))
    (if (i32.gt_u (local.get $need) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (drop (memory.grow
          (i32.sub
            (i32.div_u (i32.add (local.get $need) (i32.const 65535)) (i32.const 65536))
            (memory.size))))))
    (drop (call $environ_get (local.get $ptrs) (local.get $buf)))
    (call $write (i32.const 128) (i32.const 19))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (call $write
          (i32.load (i32.add (local.get $ptrs) (i32.mul (local.get $i) (i32.const 4))))
          (call $strlen (i32.load (i32.add (local.get $ptrs) (i32.mul (local.get $i) (i32.const 4))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))))
