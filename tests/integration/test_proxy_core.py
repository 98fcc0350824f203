#!/usr/bin/python3
"""Integration tests for the spimwall core (issue 3) over loopback.

Starts build/spimwall (from $SW_BUILD_DIR) with a generated config, its own Python upstreams
(echo, TLS echo, PROXY v2 sink) and certificates made with the openssl CLI in a temp dir.
Covers: plain and TLS relay with SHA-256 checks both ways, SNI, upstream down, slowloris,
garbage instead of a ClientHello, per-IP limit, PROXY v1 in / v2 out, SIGHUP with a broken
rules file, SIGTERM drain. Standard library only; every process is stopped by the test.
"""
import hashlib
import os
import selectors
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import swtest  # noqa: E402
from swtest import SPIMWALL, free_port  # noqa: E402

BIG = 8 * 1024 * 1024
run = swtest.run_quiet

H = swtest.Harness("sw_core_")
PORTS = H.ports
log_text = H.log_text
DAEMON = None
SERVERS = []
PP_SEEN = []  # (src_ip, src_port) of PROXY v2 headers the sink received
TLS_REUSED = []  # session_reused of each connection to the TLS upstream


def make_certs(d):
    """A CA and leaf certificates for alpha.test, beta.test and upstream.test."""
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=spimwall test CA"])
    for name in ("alpha.test", "beta.test", "upstream.test"):
        key, csr, crt = (os.path.join(d, name + ext) for ext in (".key", ".csr", ".pem"))
        ext = os.path.join(d, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n" % name)
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", csr, "-subj", "/CN=" + name])
        run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
             "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext])


class Server(threading.Thread):
    """A threaded TCP server on 127.0.0.1; handler(conn) runs per connection."""

    def __init__(self, handler, tls_ctx=None):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.tls_ctx = tls_ctx
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()
        self.sock.close()

    def serve(self, c):
        try:
            if self.tls_ctx is not None:
                c.settimeout(10)
                c = self.tls_ctx.wrap_socket(c, server_side=True)
            self.handler(c)
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()


def echo(c):
    """Echoes until EOF, then half-closes (one thread per connection: no concurrent SSL use)."""
    c.settimeout(30)
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    if isinstance(c, ssl.SSLSocket):
        c.unwrap()
    else:
        c.shutdown(socket.SHUT_WR)


def tls_echo(c):
    TLS_REUSED.append(c.session_reused)
    echo(c)


def recv_exact(c, n):
    out = b""
    while len(out) < n:
        d = c.recv(n - len(out))
        if not d:
            raise EOFError("short read")
        out += d
    return out


def pp_sink(c):
    """Parses a PROXY v2 header (TCP over IPv4), records the source, then echoes."""
    c.settimeout(10)
    hdr = recv_exact(c, 16)
    assert hdr[:12] == b"\r\n\r\n\x00\r\nQUIT\n", hdr
    assert hdr[12] == 0x21, "version 2, PROXY command"
    ln = struct.unpack(">H", hdr[14:16])[0]
    body = recv_exact(c, ln)
    if hdr[13] == 0x11:
        src = socket.inet_ntoa(body[0:4])
        sport = struct.unpack(">H", body[8:10])[0]
        PP_SEEN.append((src, sport))
    else:
        PP_SEEN.append(("family", hdr[13]))
    echo(c)


def write_rules(ok=True):
    path = H.path("rules", "10-test.rules")
    with open(path, "w") as f:
        if ok:
            f.write('rule T_LURE body 6 /see\\s+it/i "test rule"\n')
        else:
            f.write('rule T_LURE body 6 /see\\s+it/i "test rule"\nrule broken this is not a rule\n')


def config_text():
    p = PORTS
    d = H.tmp
    cert = lambda n: '{ names = ["%s"]; cert = "%s/%s.pem"; key = "%s/%s.key"; }' % (n, d, n, d, n)
    return """
workers = 2;
shutdown_grace = 2.0;
admin = { bind = "127.0.0.1:%(admin)d"; };
log = { level = "info"; format = "logfmt"; };
matcher = { rules_dir = "%(tmp)s/rules"; };
limits = { max_connections = 1000; max_per_ip = 100; };
timeouts = { connect = 2.0; handshake = 1.0; idle = 4.0; };
listeners = (
  { name = "plain"; protocol = "tcp"; bind = "127.0.0.1:%(plain)d";
    upstream = { address = "127.0.0.1:%(echo)d"; }; },
  { name = "tls"; protocol = "tcp"; bind = "127.0.0.1:%(tls)d"; tls = "direct";
    certificates = ( %(alpha)s, %(beta)s );
    upstream = { address = "127.0.0.1:%(echo)d"; }; },
  { name = "tlsup"; protocol = "tcp"; bind = "127.0.0.1:%(tlsup)d";
    upstream = { address = "127.0.0.1:%(tlsecho)d"; tls = true; ca_file = "%(tmp)s/ca.pem";
                 server_name = "upstream.test"; }; },
  { name = "badup"; protocol = "tcp"; bind = "127.0.0.1:%(badup)d";
    upstream = { address = "127.0.0.1:%(tlsecho)d"; tls = true; server_name = "wrong.test";
                 ca_file = "%(tmp)s/ca.pem"; }; },
  { name = "down"; protocol = "tcp"; bind = "127.0.0.1:%(down)d";
    upstream = { address = "127.0.0.1:%(dead)d"; }; },
  { name = "limited"; protocol = "tcp"; bind = "127.0.0.1:%(limited)d";
    limits = { max_per_ip = 3; };
    upstream = { address = "127.0.0.1:%(echo)d"; }; },
  { name = "ppin"; protocol = "tcp"; bind = "127.0.0.1:%(ppin)d";
    proxy_protocol = [ "127.0.0.0/8" ];
    upstream = { address = "127.0.0.1:%(sink)d"; send_proxy = true; }; },
  { name = "ppout"; protocol = "tcp"; bind = "127.0.0.1:%(ppout)d";
    upstream = { address = "127.0.0.1:%(sink)d"; send_proxy = true; }; }
);
""" % dict(p, tmp=d, alpha=cert("alpha.test"), beta=cert("beta.test"))


def metrics():
    s = socket.create_connection(("127.0.0.1", PORTS["admin"]), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    out = {}
    for line in data.decode().split("\r\n\r\n", 1)[1].splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def metric(name, **labels):
    key = name
    if labels:
        key += "{" + ",".join('%s="%s"' % kv for kv in labels.items()) + "}"
    return metrics().get(key, 0.0)


def wait_for(pred, timeout=5.0):
    """swtest.wait_for with this file's default of 5 s."""
    return swtest.wait_for(pred, timeout)


def setUpModule():
    global DAEMON
    H.open()
    os.mkdir(H.path("rules"))
    write_rules(True)
    make_certs(H.tmp)
    srv_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv_ctx.load_cert_chain(H.path("upstream.test.pem"), H.path("upstream.test.key"))
    for name, handler, ctx in (("echo", echo, None), ("tlsecho", tls_echo, srv_ctx),
                               ("sink", pp_sink, None)):
        s = Server(handler, ctx)
        s.start()
        SERVERS.append(s)
        PORTS[name] = s.port
    for name in ("admin", "plain", "tls", "tlsup", "badup", "down", "dead", "limited", "ppin",
                 "ppout"):
        PORTS[name] = free_port()
    with open(H.path("spimwall.conf"), "w") as f:
        f.write(config_text())
    out = subprocess.run([SPIMWALL, "--check-config", H.path("spimwall.conf")],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "configuration OK" in out.stdout, out.stderr
    DAEMON = H.start_spimwall(config_text(), timeout=20)


def tearDownModule():
    for s in SERVERS:
        s.stop = True
    for s in SERVERS:
        s.join(2)
    H.close()


def transfer(sock, data, timeout=30):
    """Sends data and reads the echo in one thread (SSL objects are not thread-safe), then
    half-closes and expects a clean EOF. Returns what came back."""
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    sent, got, eof, shut = 0, [], False, False
    end = time.time() + timeout
    while not eof:
        if time.time() > end:
            raise TimeoutError("transfer stalled: sent %d got %d" % (sent, sum(map(len, got))))
        if sent == len(data) and not shut:
            if isinstance(sock, ssl.SSLSocket):
                pass  # the echo ends when we close; count the bytes instead
            else:
                sock.shutdown(socket.SHUT_WR)
            shut = True
        if isinstance(sock, ssl.SSLSocket) and shut and sum(map(len, got)) == len(data):
            break
        ev = sel.select(0.5)
        for _, mask in ev:
            if mask & selectors.EVENT_READ or (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                try:
                    while True:
                        d = sock.recv(262144)
                        if not d:
                            eof = True
                            break
                        got.append(d)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    pass
            if mask & selectors.EVENT_WRITE and sent < len(data):
                try:
                    sent += sock.send(data[sent:sent + 262144])
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    pass
        if sent == len(data):
            sel.modify(sock, selectors.EVENT_READ)
    sel.close()
    return b"".join(got)


def client_ctx(verify=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(H.path("ca.pem"))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def closed_within(sock, seconds):
    """True if the peer closes sock (EOF or reset) within seconds."""
    sock.settimeout(seconds)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class ProxyCore(unittest.TestCase):
    def test_check_config_reports_rules_cache(self):
        # a missing cache file is written silently; a cache of another format is reported,
        # compiled again and rewritten; the rewritten one is used without a word
        cache = H.path("rules.hsdb")
        conf = H.path("cache.conf")
        with open(conf, "w") as f:
            f.write(config_text().replace(
                'matcher = { rules_dir = "%s/rules"; };' % H.tmp,
                'matcher = { rules_dir = "%s/rules"; cache = "%s"; };' % (H.tmp, cache)))

        def check():
            out = subprocess.run([SPIMWALL, "--check-config", conf], capture_output=True,
                                 text=True)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("configuration OK", out.stdout)
            return out.stdout

        self.assertFalse(os.path.exists(cache))
        self.assertNotIn("rules cache", check())
        with open(cache, "rb") as f:
            data = bytearray(f.read())
        self.assertEqual(data[:8], b"SWHSDB01")
        self.assertEqual(struct.unpack_from("<I", data, 8)[0], 3)  # format 3
        data[8] = 1
        with open(cache, "wb") as f:
            f.write(data)
        self.assertIn("rules cache not used, compiled again: %s: hsdb cache: format version "
                      "check failed (file 1, expected 3)" % cache, check())
        self.assertNotIn("rules cache", check())
        with open(cache, "rb") as f:
            self.assertEqual(struct.unpack_from("<I", f.read(12), 8)[0], 3)

    def test_plain_relay_sha256(self):
        data = os.urandom(BIG)
        s = socket.create_connection(("127.0.0.1", PORTS["plain"]))
        back = transfer(s, data)
        s.close()
        self.assertEqual(len(back), len(data))
        self.assertEqual(hashlib.sha256(back).hexdigest(), hashlib.sha256(data).hexdigest())
        m = metrics()
        self.assertGreaterEqual(
            m['spimwall_bytes_total{listener="plain",direction="client_to_server"}'], BIG)
        self.assertGreaterEqual(
            m['spimwall_bytes_total{listener="plain",direction="server_to_client"}'], BIG)

    def test_tls_client_leg_sha256(self):
        data = os.urandom(BIG)
        raw = socket.create_connection(("127.0.0.1", PORTS["tls"]))
        s = client_ctx(True).wrap_socket(raw, server_hostname="alpha.test")
        back = transfer(s, data)
        s.close()
        self.assertEqual(hashlib.sha256(back).hexdigest(), hashlib.sha256(data).hexdigest())

    def test_tls_upstream_leg_sha256(self):
        data = os.urandom(BIG)
        s = socket.create_connection(("127.0.0.1", PORTS["tlsup"]))
        back = transfer(s, data)
        s.close()
        self.assertEqual(hashlib.sha256(back).hexdigest(), hashlib.sha256(data).hexdigest())
        self.assertGreaterEqual(metric("spimwall_tls_handshakes_total", listener="tlsup",
                                       leg="upstream"), 1)

    def test_upstream_session_resumption(self):
        # each worker keeps its last upstream session: of 6 connections at most the first one
        # per worker (2 workers) does a full handshake
        del TLS_REUSED[:]
        for i in range(6):
            s = socket.create_connection(("127.0.0.1", PORTS["tlsup"]))
            s.sendall(b"r%d" % i)
            self.assertEqual(recv_exact(s, 2), b"r%d" % i)
            s.close()
            time.sleep(0.05)
        self.assertTrue(wait_for(lambda: len(TLS_REUSED) == 6))
        self.assertGreaterEqual(TLS_REUSED.count(True), 4, TLS_REUSED)

    def test_upstream_verify_failure(self):
        s = socket.create_connection(("127.0.0.1", PORTS["badup"]))
        self.assertTrue(closed_within(s, 3))
        s.close()
        self.assertTrue(wait_for(lambda: metric("spimwall_tls_handshake_failures_total",
                                                listener="badup", reason="verify") >= 1))

    def test_sni_picks_certificate(self):
        for name in ("alpha.test", "beta.test"):
            raw = socket.create_connection(("127.0.0.1", PORTS["tls"]))
            s = client_ctx(True).wrap_socket(raw, server_hostname=name)
            cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
            self.assertEqual(cn, name)
            s.close()
        # an unknown name gets the default (first) certificate
        raw = socket.create_connection(("127.0.0.1", PORTS["tls"]))
        s = client_ctx(False).wrap_socket(raw, server_hostname="other.test")
        der = s.getpeercert(binary_form=True)
        s.close()
        with open(H.path("alpha.test.pem")) as f:
            self.assertEqual(der, ssl.PEM_cert_to_DER_cert(f.read()))

    def test_session_resumption(self):
        ctx = client_ctx(True)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        raw = socket.create_connection(("127.0.0.1", PORTS["tls"]))
        s = ctx.wrap_socket(raw, server_hostname="alpha.test")
        sess = s.session
        s.close()
        raw = socket.create_connection(("127.0.0.1", PORTS["tls"]))
        s = ctx.wrap_socket(raw, server_hostname="alpha.test", session=sess)
        self.assertTrue(s.session_reused)
        s.close()

    def test_upstream_down(self):
        before = metric("spimwall_connections_rejected_total", listener="down",
                        reason="upstream_down")
        s = socket.create_connection(("127.0.0.1", PORTS["down"]))
        s.settimeout(3)
        self.assertEqual(s.recv(10), b"")  # a clean close (FIN), not a reset or a hang
        s.close()
        self.assertTrue(wait_for(lambda: metric("spimwall_connections_rejected_total",
                                                listener="down",
                                                reason="upstream_down") == before + 1))
        self.assertIn("event=upstream_down listener=down", log_text())

    def test_reputation_cache_metrics(self):
        # the shared cache exists from start-up, sized by reputation.max_bytes (64 MiB default)
        m = metrics()
        self.assertGreater(m["spimwall_reputation_capacity"], 0)
        self.assertGreater(m["spimwall_reputation_bytes"], 0)
        self.assertLessEqual(m["spimwall_reputation_bytes"], 64 * 1024 * 1024)
        self.assertEqual(m["spimwall_reputation_evictions_total"], 0)

    def test_slowloris_handshake_timeout(self):
        before = metric("spimwall_timeouts_total", listener="tls", kind="handshake")
        t0 = time.time()
        partial = socket.create_connection(("127.0.0.1", PORTS["tls"]))
        partial.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello start
        silent = socket.create_connection(("127.0.0.1", PORTS["tls"]))
        self.assertTrue(closed_within(partial, 4))
        self.assertTrue(closed_within(silent, 4))
        took = time.time() - t0
        self.assertGreater(took, 0.8)  # handshake timeout is 1 s
        self.assertLess(took, 3.5)
        partial.close()
        silent.close()
        self.assertTrue(wait_for(lambda: metric("spimwall_timeouts_total", listener="tls",
                                                kind="handshake") >= before + 2))
        self.assertGreaterEqual(metric("spimwall_tls_handshake_failures_total", listener="tls",
                                       reason="timeout"), 2)

    def test_idle_timeout(self):
        s = socket.create_connection(("127.0.0.1", PORTS["plain"]))
        s.sendall(b"ping")
        self.assertEqual(recv_exact(s, 4), b"ping")
        t0 = time.time()
        self.assertTrue(closed_within(s, 8))
        self.assertGreater(time.time() - t0, 3.0)  # idle is 4 s
        s.close()

    def test_garbage_instead_of_client_hello(self):
        before = metric("spimwall_tls_handshake_failures_total", listener="tls",
                        reason="not_tls")
        s = socket.create_connection(("127.0.0.1", PORTS["tls"]))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n" + os.urandom(64))
        t0 = time.time()
        self.assertTrue(closed_within(s, 2))
        self.assertLess(time.time() - t0, 0.8)  # at once, not at the timeout
        s.close()
        self.assertTrue(wait_for(lambda: metric("spimwall_tls_handshake_failures_total",
                                                listener="tls", reason="not_tls") == before + 1))

    def test_per_ip_limit(self):
        before = metric("spimwall_connections_rejected_total", listener="limited",
                        reason="per_ip_limit")
        conns = []
        for i in range(3):
            c = socket.create_connection(("127.0.0.1", PORTS["limited"]))
            c.sendall(b"x%d" % i)
            self.assertEqual(recv_exact(c, 2), b"x%d" % i)
            conns.append(c)
        extra = socket.create_connection(("127.0.0.1", PORTS["limited"]))
        self.assertTrue(closed_within(extra, 2))
        extra.close()
        self.assertTrue(wait_for(lambda: metric("spimwall_connections_rejected_total",
                                                listener="limited",
                                                reason="per_ip_limit") == before + 1))
        conns.pop().close()
        time.sleep(0.3)  # the proxy notices the close and releases the slot
        again = socket.create_connection(("127.0.0.1", PORTS["limited"]))
        again.sendall(b"ok")
        self.assertEqual(recv_exact(again, 2), b"ok")
        again.close()
        for c in conns:
            c.close()

    def test_proxy_v1_in_v2_out(self):
        del PP_SEEN[:]
        s = socket.create_connection(("127.0.0.1", PORTS["ppin"]))
        s.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 5222\r\nhello")
        self.assertEqual(recv_exact(s, 5), b"hello")
        s.close()
        self.assertEqual(PP_SEEN, [("203.0.113.7", 40000)])

    def test_proxy_v2_out_real_client(self):
        del PP_SEEN[:]
        s = socket.create_connection(("127.0.0.1", PORTS["ppout"]))
        s.sendall(b"hi")
        self.assertEqual(recv_exact(s, 2), b"hi")
        port = s.getsockname()[1]
        s.close()
        self.assertEqual(PP_SEEN, [("127.0.0.1", port)])

    def test_proxy_header_malformed(self):
        before = metric("spimwall_connections_rejected_total", listener="ppin",
                        reason="proxy_header")
        s = socket.create_connection(("127.0.0.1", PORTS["ppin"]))
        s.sendall(b"PROXY TCP4 not-an-address\r\n")
        self.assertTrue(closed_within(s, 2))
        s.close()
        self.assertTrue(wait_for(lambda: metric("spimwall_connections_rejected_total",
                                                listener="ppin",
                                                reason="proxy_header") == before + 1))

    def test_sighup_broken_rules_keeps_serving(self):
        live = socket.create_connection(("127.0.0.1", PORTS["plain"]))
        live.sendall(b"a")
        self.assertEqual(recv_exact(live, 1), b"a")
        write_rules(False)
        try:
            DAEMON.send_signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: "event=reload_failed" in log_text(), 10))
            self.assertIn("10-test.rules:2", log_text())
            self.assertEqual(metric("spimwall_reload_failures_total"), 1)
            self.assertIsNone(DAEMON.poll())
            live.sendall(b"b")  # the live session was not cut
            self.assertEqual(recv_exact(live, 1), b"b")
            s = socket.create_connection(("127.0.0.1", PORTS["plain"]))
            s.sendall(b"new")
            self.assertEqual(recv_exact(s, 3), b"new")
            s.close()
        finally:
            write_rules(True)
        DAEMON.send_signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: metric("spimwall_reloads_total") == 1, 10))
        live.sendall(b"c")
        self.assertEqual(recv_exact(live, 1), b"c")
        live.close()

    def test_global_connection_limit(self):
        # a second daemon with max_connections = 2 over two listeners
        port_a, port_b, admin = free_port(), free_port(), free_port()
        conf = ('''workers = 2; shutdown_grace = 0;
admin = { bind = "127.0.0.1:%d"; };
limits = { max_connections = 2; };
listeners = (
  { name = "a"; protocol = "tcp"; bind = "127.0.0.1:%d";
    upstream = { address = "127.0.0.1:%d"; }; },
  { name = "b"; protocol = "tcp"; bind = "127.0.0.1:%d";
    upstream = { address = "127.0.0.1:%d"; }; } );
''' % (admin, port_a, PORTS["echo"], port_b, PORTS["echo"]))
        p = H.start_spimwall(conf, name="limit", timeout=10)
        try:
            conns = []
            for port in (port_a, port_b):
                c = socket.create_connection(("127.0.0.1", port))
                c.sendall(b"ok")
                self.assertEqual(recv_exact(c, 2), b"ok")
                conns.append(c)
            extra = socket.create_connection(("127.0.0.1", port_a))
            self.assertTrue(closed_within(extra, 2))
            extra.close()
            self.assertTrue(wait_for(lambda: "reason=global_limit" in H.log_text("limit")))
            conns.pop().close()
            time.sleep(0.3)
            again = socket.create_connection(("127.0.0.1", port_b))
            again.sendall(b"ok")
            self.assertEqual(recv_exact(again, 2), b"ok")
            again.close()
            for c in conns:
                c.close()
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(10), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()

    def test_zz_sigterm_drains(self):
        # runs last (unittest sorts by name): it stops the daemon
        live = socket.create_connection(("127.0.0.1", PORTS["plain"]))
        live.sendall(b"1")
        self.assertEqual(recv_exact(live, 1), b"1")
        t0 = time.time()
        DAEMON.send_signal(signal.SIGTERM)
        self.assertTrue(wait_for(lambda: "event=draining" in log_text()))

        def refused():
            try:
                socket.create_connection(("127.0.0.1", PORTS["plain"]), timeout=1).close()
                return False
            except OSError:
                return True
        # the workers close their listening sockets when they get the message
        self.assertTrue(wait_for(refused, 1.0))
        time.sleep(0.5)
        live.sendall(b"2")  # still relayed during the grace time
        self.assertEqual(recv_exact(live, 1), b"2")
        self.assertIsNone(DAEMON.poll())
        self.assertEqual(DAEMON.wait(10), 0)
        took = time.time() - t0
        self.assertGreater(took, 1.5)  # shutdown_grace = 2 s
        self.assertTrue(closed_within(live, 2))
        live.close()


if __name__ == "__main__":
    if not os.access(SPIMWALL, os.X_OK):
        print("spimwall not built at %s" % SPIMWALL, file=sys.stderr)
        sys.exit(1)
    unittest.main(verbosity=2)
