//! `wasmgate compile-worker`: the worker half of `catalogue::worker`. It reads one module
//! from stdin, compiles it with an engine configured as the gateway's (on-demand
//! allocation, which compiles the same machine code as the pool), and writes the artifact
//! into the gateway's cache, sealed like any other, for the gateway to load and check.
//! It runs under the bounds the gateway set on it before it started; a module that does
//! not compile is reported on stdout, on one line, with exit status
//! [`EXIT_COMPILE_ERROR`].

use std::io::Read;
use std::os::fd::RawFd;
use std::process::ExitCode;

use wasmtime::Module;
use wasmtime::component::Component;

use crate::catalogue::cache::ArtifactCache;
use crate::catalogue::file::FileFacts;
use crate::catalogue::private_dir::PrivateDir;
use crate::catalogue::worker::EXIT_COMPILE_ERROR;
use crate::guest::abi::Abi;
use crate::guest::linkers::one_line;
use crate::runtime::worker_engine;

/// Compiles the module on stdin into the cache whose directory the gateway handed down
/// as descriptor `cache_fd`; the exit status says how it went.
pub fn compile_worker(cache_fd: RawFd, cache_max_bytes: u64, fuel_metered: bool) -> ExitCode {
    match compile_stdin(cache_fd, cache_max_bytes, fuel_metered) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            println!("{}", one_line(&reason));
            ExitCode::from(EXIT_COMPILE_ERROR as u8)
        }
    }
}

fn compile_stdin(cache_fd: RawFd, cache_max_bytes: u64, fuel_metered: bool) -> Result<(), String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the module: {e}"))?;
    let engine = worker_engine(fuel_metered).map_err(|e| e.to_string())?;
    // SAFETY: the descriptor was inherited from the gateway and nothing else here owns it.
    let dir = unsafe { PrivateDir::inherited(cache_fd) }.map_err(|e| e.to_string())?;
    let cache = ArtifactCache::within(dir, cache_max_bytes);
    let facts = FileFacts::of(&bytes);
    let stored = match facts.abi.ok_or("it is not WebAssembly")? {
        Abi::Cgi => {
            let module = Module::from_binary(&engine, &bytes).map_err(|e| format!("{e:#}"))?;
            cache.put(&facts.digest, &module)
        }
        Abi::WasiHttp | Abi::WasiHttp03 => {
            let component =
                Component::from_binary(&engine, &bytes).map_err(|e| format!("{e:#}"))?;
            cache.put(&facts.digest, &component)
        }
    };
    stored.map_err(|e| format!("cannot write the artifact to the cache: {e}"))
}
