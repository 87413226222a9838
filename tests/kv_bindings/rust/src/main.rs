//! Calls every function of the Rust bindings once, printing what each answered, in the
//! order and words every language's probe uses (tests/kv_bindings/README.md).

use wasmgate_kv::Store;

fn show(value: Option<Vec<u8>>) -> String {
    value.map_or("none".into(), |v| String::from_utf8_lossy(&v).into_owned())
}

fn keys(store: &Store) -> String {
    let keys = store.keys().expect("keys");
    let keys: Vec<String> = keys.iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
    keys.join(",")
}

fn main() {
    let store = Store::open("s").expect("open");
    store.set("a", "1").expect("set");
    println!("set ok");
    println!("get {}", show(store.get("a").expect("get")));
    println!("inc {}", store.increment("n", 5).expect("increment"));
    store.set_many(&[("b", "2"), ("c", "3")]).expect("set_many");
    println!("set_many ok");
    let many = store.get_many(&["a", "zz", "c"]).expect("get_many");
    let many: Vec<String> = many
        .into_iter()
        .map(|v| v.map_or("-".into(), |v| String::from_utf8_lossy(&v).into_owned()))
        .collect();
    println!("get_many {}", many.join(","));
    println!("keys {}", keys(&store));
    store.delete("a").expect("delete");
    println!("delete ok");
    store.delete_many(&["b", "c"]).expect("delete_many");
    println!("delete_many ok");
    println!("keys {}", keys(&store));
    println!("get_missing {}", show(store.get("a").expect("get")));
    match Store::open("elsewhere") {
        Err(wasmgate_kv::Error::Denied) => println!("denied ok"),
        other => println!("denied {other:?}"),
    }
}
