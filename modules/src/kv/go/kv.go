// Package kv gives a wasmgate CGI function (GOOS=wasip1 GOARCH=wasm) its key-value
// stores: thin bindings to the gateway's `wasmgate` host functions (README "Key-value
// stores, in brief").
//
//	store, err := kv.Open("counts")
//	visits, err := store.Increment("visits", 1)
//
// A store is open for the request that opened it; the module's [modules.NAME] kv_stores
// lists the stores it may open. Every call waits for the store within the request's
// deadline, and fails with ErrUnavailable rather than waiting past it.
package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"
)

//go:wasmimport wasmgate kv_open
func kvOpen(name unsafe.Pointer, nameLen uint32) int32

//go:wasmimport wasmgate kv_get
func kvGet(store int32, key unsafe.Pointer, keyLen uint32, buf unsafe.Pointer, bufLen uint32) int64

//go:wasmimport wasmgate kv_set
func kvSet(store int32, key unsafe.Pointer, keyLen uint32, val unsafe.Pointer, valLen uint32) int32

//go:wasmimport wasmgate kv_delete
func kvDelete(store int32, key unsafe.Pointer, keyLen uint32) int32

//go:wasmimport wasmgate kv_increment
func kvIncrement(store int32, key unsafe.Pointer, keyLen uint32, delta int64, result unsafe.Pointer) int32

//go:wasmimport wasmgate kv_list
func kvList(store int32, cursor int64, buf unsafe.Pointer, bufLen uint32, next unsafe.Pointer) int32

//go:wasmimport wasmgate kv_get_many
func kvGetMany(store int32, keys unsafe.Pointer, keysLen uint32, buf unsafe.Pointer, bufLen uint32) int64

//go:wasmimport wasmgate kv_set_many
func kvSetMany(store int32, entries unsafe.Pointer, entriesLen uint32) int32

//go:wasmimport wasmgate kv_delete_many
func kvDeleteMany(store int32, keys unsafe.Pointer, keysLen uint32) int32

// The gateway's error codes.
var (
	ErrDenied      = errors.New("kv: the store is not in this module's kv_stores")
	ErrTooLarge    = errors.New("kv: the key or value is over its limit")
	ErrUnavailable = errors.New("kv: the store did not answer in time")
	ErrInvalid     = errors.New("kv: not a store name or handle")
	ErrQuota       = errors.New("kv: the store is full (max_store_bytes)")
	ErrNotANumber  = errors.New("kv: the value is not a decimal int64, or the sum overflows")
)

const (
	notFound  = -1
	noMore    = -1
	firstRead = 4096
)

func codeError(code int64) error {
	switch code {
	case -2:
		return ErrDenied
	case -3:
		return ErrTooLarge
	case -4:
		return ErrUnavailable
	case -5:
		return ErrInvalid
	case -6:
		return ErrQuota
	case -7:
		return ErrNotANumber
	}
	return fmt.Errorf("kv: error %d", code)
}

// ptr is the address of b's first byte (nil for an empty slice, which the gateway reads
// as zero bytes).
func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// Store is a store this request opened.
type Store struct{ handle int32 }

// Open opens store name ([A-Za-z0-9_-]{1,64}), which the module's kv_stores lists.
func Open(name string) (Store, error) {
	b := []byte(name)
	h := kvOpen(ptr(b), uint32(len(b)))
	if h < 0 {
		return Store{}, codeError(int64(h))
	}
	return Store{h}, nil
}

// Get returns the value at key, and whether there is one.
func (s Store) Get(key string) ([]byte, bool, error) {
	k := []byte(key)
	buf := make([]byte, firstRead)
	for {
		n := kvGet(s.handle, ptr(k), uint32(len(k)), ptr(buf), uint32(len(buf)))
		switch {
		case n == notFound:
			return nil, false, nil
		case n < 0:
			return nil, false, codeError(n)
		case int(n) <= len(buf):
			return buf[:n], true, nil
		}
		buf = make([]byte, n)
	}
}

// Set sets key to value.
func (s Store) Set(key string, value []byte) error {
	k := []byte(key)
	if c := kvSet(s.handle, ptr(k), uint32(len(k)), ptr(value), uint32(len(value))); c < 0 {
		return codeError(int64(c))
	}
	return nil
}

// Delete deletes key, whether or not it exists.
func (s Store) Delete(key string) error {
	k := []byte(key)
	if c := kvDelete(s.handle, ptr(k), uint32(len(k))); c < 0 {
		return codeError(int64(c))
	}
	return nil
}

// Increment adds delta to the counter at key (an absent key counts from 0), atomically,
// and returns the new value. The counter is stored as decimal text.
func (s Store) Increment(key string, delta int64) (int64, error) {
	k := []byte(key)
	var value int64
	if c := kvIncrement(s.handle, ptr(k), uint32(len(k)), delta, unsafe.Pointer(&value)); c < 0 {
		return 0, codeError(int64(c))
	}
	return value, nil
}

// Keys returns every key, in the store's order.
func (s Store) Keys() ([]string, error) {
	var keys []string
	buf := make([]byte, 64*1024)
	for cursor := int64(0); cursor != noMore; {
		var next int64
		n := kvList(s.handle, cursor, ptr(buf), uint32(len(buf)), unsafe.Pointer(&next))
		if n == -3 {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if n < 0 {
			return nil, codeError(int64(n))
		}
		at := 0
		for i := int32(0); i < n; i++ {
			l := int(binary.LittleEndian.Uint32(buf[at:]))
			keys = append(keys, string(buf[at+4:at+4+l]))
			at += 4 + l
		}
		cursor = next
	}
	return keys, nil
}

// encode lays strings out as the batch calls take them: each a uint32 LE length and its
// bytes.
func encode(strings ...[]byte) []byte {
	var out []byte
	for _, s := range strings {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(s)))
		out = append(out, s...)
	}
	return out
}

// GetMany returns the values at keys, in order; a nil entry is an absent key.
func (s Store) GetMany(keys ...string) ([][]byte, error) {
	var raw [][]byte
	for _, k := range keys {
		raw = append(raw, []byte(k))
	}
	request := encode(raw...)
	buf := make([]byte, firstRead)
	for {
		n := kvGetMany(s.handle, ptr(request), uint32(len(request)), ptr(buf), uint32(len(buf)))
		if n < 0 {
			return nil, codeError(n)
		}
		if int(n) > len(buf) {
			buf = make([]byte, n)
			continue
		}
		values := make([][]byte, 0, len(keys))
		for at := 0; at+4 <= int(n); {
			l := int32(binary.LittleEndian.Uint32(buf[at:]))
			at += 4
			if l < 0 {
				values = append(values, nil)
				continue
			}
			values = append(values, buf[at:at+int(l)])
			at += int(l)
		}
		return values, nil
	}
}

// SetMany sets every key of pairs to its value in one atomic write: all or none.
func (s Store) SetMany(pairs map[string][]byte) error {
	var raw [][]byte
	for k, v := range pairs {
		raw = append(raw, []byte(k), v)
	}
	entries := encode(raw...)
	if c := kvSetMany(s.handle, ptr(entries), uint32(len(entries))); c < 0 {
		return codeError(int64(c))
	}
	return nil
}

// DeleteMany deletes every key in keys.
func (s Store) DeleteMany(keys ...string) error {
	var raw [][]byte
	for _, k := range keys {
		raw = append(raw, []byte(k))
	}
	request := encode(raw...)
	if c := kvDeleteMany(s.handle, ptr(request), uint32(len(request))); c < 0 {
		return codeError(int64(c))
	}
	return nil
}
