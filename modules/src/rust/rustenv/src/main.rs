//! rustenv: prints "rustenv environment:" and then every environment variable the gateway
//! gives the function, as `KEY: VALUE` lines, sorted. The smallest useful Rust function.

fn main() {
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    println!("rustenv environment:");
    for (key, value) in vars {
        println!("{key}: {value}");
    }
}
