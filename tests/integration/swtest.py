"""The shared harness of the Python integration tests (tests/integration/test_*.py): paths,
free ports, polling, and a Harness that owns one test module's scratch directory and the real
peers it starts there (spimwall, Prosody, helper servers), stopped by Harness.close().

Not a test itself: ctest runs test_*.py only, with Debian's /usr/bin/python3. The tests find
this module through sys.path[0], the directory of the script being run (set explicitly in each
test file too). Standard library only; slixmpp is imported by the XMPP helpers when called.
"""
import asyncio
import logging
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

SRC = os.environ.get("SW_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "../.."))
BUILD = os.environ.get("SW_BUILD_DIR", os.path.join(SRC, "build"))
SPIMWALL = os.path.join(BUILD, "spimwall")
PROSODY = os.path.join(SRC, "scripts", "prosody-local.sh")


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout=10.0):
    """Polls pred every 50 ms for up to timeout seconds; returns its last value."""
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


def run_quiet(cmd, env=None):
    """Runs cmd to completion, output discarded; raises if it fails."""
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def self_signed(key, cert, name="localhost"):
    """A throw-away RSA key and self-signed certificate for name (openssl CLI)."""
    run_quiet(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
               "-subj", "/CN=" + name, "-addext", "subjectAltName=DNS:" + name,
               "-keyout", key, "-out", cert])


def conf(admin, listeners, extra=""):
    """A spimwall config for the tests: one worker, the admin listener on 127.0.0.1:admin,
    info logs, the repository's rules and lists, extra settings (complete lines), then
    listeners, the entries of the listeners list."""
    return ("workers = 1;\n"
            'admin = { bind = "127.0.0.1:%d"; };\n'
            'log = { level = "info"; };\n'
            'matcher = { rules_dir = "%s/conf/rules"; lists_dir = "%s/conf/lists"; };\n'
            "%slisteners = (\n%s);\n" % (admin, SRC, SRC, extra, listeners))


class Harness:
    """One test module's scratch directory (made by open(), removed by close() unless
    SW_KEEP_TMP is set), its ports by name, and the processes it started."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.tmp = None
        self.ports = {}
        self.procs = []  # killed by close() if still running
        self.prosody_dirs = []  # stopped by close()

    def open(self, *port_names):
        self.tmp = tempfile.mkdtemp(prefix=self.prefix)
        for name in port_names:
            self.ports[name] = free_port()
        return self

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def log_text(self, name="spimwall"):
        """What spimwall instance name (start_spimwall) has logged so far."""
        return read_text(self.path(name + ".log"))

    def track(self, proc):
        """Has close() stop proc (a Popen); returns it."""
        self.procs.append(proc)
        return proc

    def start_spimwall(self, conf, name="spimwall", timeout=30):
        """Writes conf to <name>.conf and runs spimwall on it, logging to <name>.log; returns
        the Popen once it logged event=started, raises AssertionError (with the log) if it
        exits or does not start within timeout seconds."""
        conf_path = self.path(name + ".conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        with open(self.path(name + ".log"), "ab") as log:
            p = self.track(subprocess.Popen([SPIMWALL, "-c", conf_path], stdout=log,
                                            stderr=log))
        wait_for(lambda: "event=started" in self.log_text(name) or p.poll() is not None, timeout)
        assert p.poll() is None and "event=started" in self.log_text(name), \
            "spimwall did not start:\n" + self.log_text(name)
        return p

    def start_prosody(self, port, users, env=None, wait_port=None):
        """Starts a local Prosody (scripts/prosody-local.sh) in <tmp>/prosody listening on
        port with users ("name:password"), env added to the environment; waits for wait_port
        (default port). Returns its directory."""
        d = self.path("prosody")
        self.prosody_dirs.append(d)
        run_quiet([PROSODY, "start", d, str(port)] + list(users),
                  env=dict(os.environ, **(env or {})))
        assert wait_for(lambda: port_open(wait_port or port), 20), "prosody"
        return d

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            if p.stdout is not None:
                p.stdout.close()
        for d in self.prosody_dirs:
            subprocess.run([PROSODY, "stop", d])
        if self.tmp is not None and os.environ.get("SW_KEEP_TMP") is None:
            shutil.rmtree(self.tmp, ignore_errors=True)


# --- XMPP clients ---------------------------------------------------------------------------

logging.getLogger("slixmpp").setLevel(logging.CRITICAL)

# A client stream header, for raw sessions.
XMPP_HDR = (b"<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' "
            b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")


def make_client(jid, pw, sm=False):
    """A slixmpp client that records the bodies (got) and raw stanzas (raw) it receives, the
    message errors (bounces) and stream errors; ready resolves once it has its roster. sm adds
    XEP-0198."""
    import slixmpp

    class Client(slixmpp.ClientXMPP):
        def __init__(self):
            super().__init__(jid, pw)
            self.got, self.raw, self.errors, self.stream_errors = [], [], [], []
            self.ready = asyncio.get_event_loop().create_future()
            self.add_event_handler("session_start", self.start)
            self.add_event_handler("message", self.on_msg)
            self.add_event_handler("message_error", lambda m: self.errors.append(m))
            self.add_event_handler("stream_error", lambda e: self.stream_errors.append(e))
            if sm:
                self.register_plugin("xep_0198")

        def on_msg(self, m):
            if m["type"] != "error":
                self.got.append(m["body"])
                self.raw.append(str(m))

        async def start(self, _):
            self.send_presence()
            await self.get_roster()
            if not self.ready.done():
                self.ready.set_result(True)

    return Client()


def connect(c, port, mode):
    """Connects client c to 127.0.0.1:port: mode "direct" (TLS at once), "plain" (no TLS,
    PLAIN allowed) or "starttls"; the proxy's test certificate is not verified."""
    if mode == "direct":
        c.connect(("127.0.0.1", port), use_ssl=True, disable_starttls=True)
    elif mode == "plain":
        c["feature_mechanisms"].unencrypted_plain = True
        c.connect(("127.0.0.1", port), disable_starttls=True)
    else:
        c.connect(("127.0.0.1", port))
    c.ssl_context.check_hostname = False
    c.ssl_context.verify_mode = ssl.CERT_NONE


async def until(pred, timeout=15):
    """wait_for inside an event loop."""
    end = time.time() + timeout
    while time.time() < end and not pred():
        await asyncio.sleep(0.05)
    return pred()


class RawXmpp:
    """A plaintext XMPP client on a socket, for what slixmpp cannot be made to do on cue:
    drop the TCP connection without closing the stream, then resume (XEP-0198) with chosen h
    values. Top-level elements are parsed with ElementTree's pull parser."""

    NS_SM = "urn:xmpp:sm:3"

    def __init__(self, port):
        import xml.etree.ElementTree as ET
        self.ET = ET
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.inbound = 0  # stanzas received since SM was enabled (message, presence, iq)
        self.counting = False
        self.items = []
        self.skipped = []

    def restart(self):
        self.parser = self.ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.sock.sendall(XMPP_HDR)
        return self.expect("{http://etherx.jabber.org/streams}features")

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def next(self, timeout=10):
        end = time.time() + timeout
        while not self.items:
            if time.time() > end:
                raise AssertionError("timed out waiting for a stanza")
            self.sock.settimeout(max(0.05, end - time.time()))
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("connection closed")
            self.parser.feed(data)
            for ev, el in self.parser.read_events():
                if ev == "start":
                    self.depth += 1
                else:
                    self.depth -= 1
                    if self.depth == 1:
                        self.items.append(el)
                        if self.counting and el.tag.split("}")[-1] in ("message", "presence", "iq"):
                            self.inbound += 1
        return self.items.pop(0)

    def expect(self, tag, timeout=10):
        """The next element named tag; the ones before it are kept in self.skipped."""
        while True:
            el = self.next(timeout)
            if el.tag == tag:
                return el
            if el.tag.endswith("}error") and "streams" in el.tag:
                raise AssertionError("stream error: %s" % self.ET.tostring(el))
            self.skipped.append(el)

    def take(self, tag, timeout=10):
        """Like expect(), but an element skipped earlier counts first."""
        for i, el in enumerate(self.skipped):
            if el.tag == tag:
                return self.skipped.pop(i)
        return self.expect(tag, timeout)

    def login(self, user, pw, resource="raw"):
        import base64
        self.restart()
        cred = base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()).decode()
        self.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>" % cred)
        self.expect("{urn:ietf:params:xml:ns:xmpp-sasl}success")
        return self.restart()

    def bind(self, resource="raw"):
        self.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  "<resource>%s</resource></bind></iq>" % resource)
        self.expect("{jabber:client}iq")

    def read_to_eof(self, timeout=10):
        """The raw bytes that arrive until the peer closes the connection (b"" + what came);
        raises AssertionError if it is still open after timeout seconds."""
        out = b""
        end = time.time() + timeout
        while True:
            if time.time() > end:
                raise AssertionError("still open after %ss; got %r" % (timeout, out[-300:]))
            self.sock.settimeout(max(0.05, end - time.time()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return out
            if not data:
                return out
            out += data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
