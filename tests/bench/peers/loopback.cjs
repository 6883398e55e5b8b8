// Loaded with `node -r` before Portkey's server: it listens on every interface and has no
// option to choose one, so every listen() is bound to loopback here.
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "object" && args[0] !== null) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  } else if (typeof args[0] === "number") {
    const hostGiven = typeof args[1] === "string";
    args.splice(1, hostGiven ? 1 : 0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
