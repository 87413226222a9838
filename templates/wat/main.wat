;; {{name}}: a wasmgate function in hand-written WebAssembly text (a WASI preview1
;; command, served CGI-style): the whole CGI contract with nothing in between.
;;
;;     GET  /{{name}}?name=Ada          200 {"query": "name=Ada"}
;;     POST /{{name}}  {"name": "Ada"}  201, the JSON object sent, echoed
;;     POST /{{name}}  not an object    400 {"error": "..."}
;;
;; The request comes in as environment variables (environ_get: REQUEST_METHOD,
;; QUERY_STRING, ...) and the body on stdin (fd 0); the response goes to stdout (fd 1) as
;; a header block, an empty line and the body; stderr (fd 2) goes to the gateway's log.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (memory (export "memory") 2)

  ;; Memory: 0 an iovec, 8 a count, 16 and 20 the environment's sizes, 1024 its pointers
  ;; (at most 256), 4096 its strings (at most 32 KiB), 40960 the body (at most 16 KiB);
  ;; the strings below from 256.
  (global $ENV_PTRS i32 (i32.const 1024))
  (global $ENV_BUF i32 (i32.const 4096))
  (global $ENV_MAX_COUNT i32 (i32.const 256))
  (global $ENV_MAX_BYTES i32 (i32.const 32768))
  (global $BODY i32 (i32.const 40960))
  (global $BODY_MAX i32 (i32.const 16384))
  (global $value_len (mut i32) (i32.const 0))

  (data (i32.const 256) "REQUEST_METHOD=")      ;; 15 bytes
  (data (i32.const 272) "QUERY_STRING=")        ;; 13
  (data (i32.const 288) "POST")                 ;; 4
  (data (i32.const 300) "Status: 200\nContent-Type: application/json\nCache-Control: no-store\n\n") ;; 68
  (data (i32.const 380) "Status: 201\nContent-Type: application/json\nCache-Control: no-store\n\n") ;; 68
  (data (i32.const 460) "Status: 400\nContent-Type: application/json\nCache-Control: no-store\n\n") ;; 68
  (data (i32.const 540) "{\"query\":\"")          ;; 10
  (data (i32.const 552) "\"}\n")                ;; 3
  (data (i32.const 560) "{\"error\":\"the body is not a JSON object\"}\n") ;; 42
  (data (i32.const 608) "answered a request\n")  ;; 19

  ;; Writes len bytes at ptr to fd.
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))

  ;; Whether the len bytes at a and b are equal.
  (func $equal (param $a i32) (param $b i32) (param $len i32) (result i32)
    (loop $next
      (if (i32.eqz (local.get $len)) (then (return (i32.const 1))))
      (if (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b)))
        (then (return (i32.const 0))))
      (local.set $a (i32.add (local.get $a) (i32.const 1)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (local.set $len (i32.sub (local.get $len) (i32.const 1)))
      (br $next))
    (unreachable))

  ;; The length of the NUL-terminated string at ptr.
  (func $strlen (param $ptr i32) (result i32)
    (local $end i32)
    (local.set $end (local.get $ptr))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (local.get $end))))
        (local.set $end (i32.add (local.get $end) (i32.const 1)))
        (br $next)))
    (i32.sub (local.get $end) (local.get $ptr)))

  ;; The value of the variable whose "KEY=" is the key_len bytes at key: its address, its
  ;; length in $value_len; 0 and 0 when it is not set.
  (func $getenv (param $key i32) (param $key_len i32) (result i32)
    (local $i i32) (local $entry i32)
    (global.set $value_len (i32.const 0))
    (block $none
      (br_if $none (call $environ_sizes_get (i32.const 16) (i32.const 20)))
      (br_if $none (i32.gt_u (i32.load (i32.const 16)) (global.get $ENV_MAX_COUNT)))
      (br_if $none (i32.gt_u (i32.load (i32.const 20)) (global.get $ENV_MAX_BYTES)))
      (br_if $none (call $environ_get (global.get $ENV_PTRS) (global.get $ENV_BUF)))
      (loop $next
        (br_if $none (i32.ge_u (local.get $i) (i32.load (i32.const 16))))
        (local.set $entry (i32.load (i32.add (global.get $ENV_PTRS) (i32.shl (local.get $i) (i32.const 2)))))
        (if (call $equal (local.get $entry) (local.get $key) (local.get $key_len))
          (then
            (local.set $entry (i32.add (local.get $entry) (local.get $key_len)))
            (global.set $value_len (call $strlen (local.get $entry)))
            (return (local.get $entry))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; Reads the body into $BODY; returns its length.
  (func $read_body (result i32)
    (local $len i32)
    (block $end
      (loop $more
        (br_if $end (i32.ge_u (local.get $len) (global.get $BODY_MAX)))
        (i32.store (i32.const 0) (i32.add (global.get $BODY) (local.get $len)))
        (i32.store (i32.const 4) (i32.sub (global.get $BODY_MAX) (local.get $len)))
        (br_if $end (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $end (i32.eqz (i32.load (i32.const 8))))
        (local.set $len (i32.add (local.get $len) (i32.load (i32.const 8))))
        (br $more)))
    (local.get $len))

  (func (export "_start")
    (local $method i32) (local $query i32) (local $len i32)
    (call $write (i32.const 2) (i32.const 608) (i32.const 19))
    (local.set $method (call $getenv (i32.const 256) (i32.const 15)))
    (if (i32.and (i32.eq (global.get $value_len) (i32.const 4))
                 (call $equal (local.get $method) (i32.const 288) (i32.const 4)))
      (then
        (local.set $len (call $read_body))
        ;; A JSON object starts with "{" (a real parser is for a real language).
        (if (i32.and (i32.gt_u (local.get $len) (i32.const 0))
                     (i32.eq (i32.load8_u (global.get $BODY)) (i32.const 123)))
          (then
            (call $write (i32.const 1) (i32.const 380) (i32.const 68))
            (call $write (i32.const 1) (global.get $BODY) (local.get $len)))
          (else
            (call $write (i32.const 1) (i32.const 460) (i32.const 68))
            (call $write (i32.const 1) (i32.const 560) (i32.const 42))))
        (return)))
    ;; Anything else: the query string, as JSON (a URL carries no '"' or '\' unencoded).
    (local.set $query (call $getenv (i32.const 272) (i32.const 13)))
    (call $write (i32.const 1) (i32.const 300) (i32.const 68))
    (call $write (i32.const 1) (i32.const 540) (i32.const 10))
    (call $write (i32.const 1) (local.get $query) (global.get $value_len))
    (call $write (i32.const 1) (i32.const 552) (i32.const 3))))
