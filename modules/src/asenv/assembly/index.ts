// asenv: prints "asenv environment:" and then every environment variable the gateway gives
// the function, one KEY=VALUE a line. AssemblyScript with @assemblyscript/wasi-shim.

process.stdout.write("asenv environment:\n");
const keys = process.env.keys();
for (let i = 0; i < keys.length; i++) {
  const key = keys[i];
  process.stdout.write(key + "=" + process.env.get(key) + "\n");
}
