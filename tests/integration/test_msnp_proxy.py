#!/usr/bin/python3
"""msnp through spimwall (issue 5): two clients log in to tests/msnp/msnp_server.py through
spimwall's notification-server listener, reach a switchboard only through spimwall's own
switchboard listener (XFR and RNG rewritten, routed by cookie), and chat. Ham arrives byte for
byte, spim is tagged (X-Spam headers, byte count fixed) or dropped with the right ack
behaviour, a bad cookie gets 911 and a malformed length 200, and other sessions go on. One
account sending the same link through many switchboards is caught by fan-out and quarantined.
Offline messages: the sign-in notification listing a spim OIM and a ham OIM reaches the client
with the spim entry cut out, the ham entry byte for byte and the byte count fixed; a new-OIM
notification whose one entry is spim arrives with an empty <MD>.
"""
import base64
import json
import os
import re
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import swtest  # noqa: E402
from swtest import free_port  # noqa: E402

SERVER = os.path.join(swtest.SRC, "tests", "msnp", "msnp_server.py")

H = swtest.Harness("sw_msnp_")
PORTS = H.ports
log_text = H.log_text

SPIM = b"lol! see it! u'll like it http://bit.ly/x1 http://evil.example/pics.zip"
HAM = b"hi bob, lunch at noon? 100% sure & <ok>"

# Stored OIMs of olivia: a lure whose sender name carries the link (B-encoded UTF-8, so only
# a decoded name matches), an ordinary one (B-encoded name, Q-encoded ISO-8859-1 subject), and
# a lure "arriving" while she is signed in, split over a Q-encoded name and a B-encoded subject
# (neither half is dropped alone).
# a switchboard host name longer than any spimwall keeps (and than DNS allows)
FAR_HOST = "sb-" + "x" * 300 + ".example"

OIM_USER = "olivia@example.com"
OIM_LURE = "lol see it u'll like it www.evil-pics.example/pics.zip"


def b_word(text):
    return "=?utf-8?B?%s?=" % base64.b64encode(text.encode()).decode()


OIMS = {OIM_USER: [
    {"e": "mallory@evil.example", "n": b_word(OIM_LURE), "su": " ",
     "id": "08CBD8BE-9972-433C-A9DA-84A0A725ABFA"},
    {"e": "alice@example.com", "n": b_word("Alice Smith"),
     "su": "=?iso-8859-1?Q?Caf=E9_tomorrow=3F?=", "id": "11111111-2222-3333-4444-555555555555"},
    {"e": "trudy@evil.example", "n": "=?utf-8?Q?look_at_my_summer_pictures?=",
     "su": b_word("www.evil-pics.example/summer.zip"), "id": "22222222-3333-4444-5555-666666666666",
     "later": True},
]}


def setUpModule():
    H.open("ns", "sb", "pns", "psb", "tns", "tsb", "admin", "fns", "fsb", "pfns", "nns", "nsb",
           "pnns")
    with open(H.path("oims.json"), "w") as f:
        json.dump(OIMS, f)
    srv = H.track(subprocess.Popen(["/usr/bin/python3", SERVER, "--ns-port", str(PORTS["ns"]),
                                    "--sb-port", str(PORTS["sb"]), "--log", H.path("sb.log"),
                                    "--oims", H.path("oims.json")],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
    assert srv.stdout.readline().strip() == b"ready"
    # a second server whose XFR and RNG name a switchboard host spimwall cannot stand in for
    far = H.track(subprocess.Popen(["/usr/bin/python3", SERVER, "--ns-port", str(PORTS["fns"]),
                                    "--sb-port", str(PORTS["fsb"]), "--sb-host", FAR_HOST],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
    assert far.stdout.readline().strip() == b"ready"
    # and one that names its switchboard by host name and uses UUID cookies
    named = H.track(subprocess.Popen(["/usr/bin/python3", SERVER, "--ns-port", str(PORTS["nns"]),
                                      "--sb-port", str(PORTS["nsb"]), "--sb-host", "localhost",
                                      "--cookies", "uuid", "--log", H.path("nsb.log")],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
    assert named.stdout.readline().strip() == b"ready"
    listeners = """
  { name = "ns"; protocol = "msnp"; bind = "127.0.0.1:%(pns)d";
    upstream = { address = "127.0.0.1:%(ns)d"; };
    msnp = { role = "ns"; switchboard = "127.0.0.1:%(psb)d"; }; },
  { name = "sb"; protocol = "msnp"; bind = "127.0.0.1:%(psb)d"; msnp = { role = "sb"; }; },
  { name = "ns-far"; protocol = "msnp"; bind = "127.0.0.1:%(pfns)d";
    upstream = { address = "127.0.0.1:%(fns)d"; };
    msnp = { role = "ns"; switchboard = "127.0.0.1:%(psb)d"; }; },
  { name = "ns-named"; protocol = "msnp"; bind = "127.0.0.1:%(pnns)d";
    upstream = { address = "127.0.0.1:%(nns)d"; };
    msnp = { role = "ns"; switchboard = "127.0.0.1:%(psb)d"; }; },
  { name = "ns-tag"; protocol = "msnp"; bind = "127.0.0.1:%(tns)d";
    upstream = { address = "127.0.0.1:%(ns)d"; };
    msnp = { role = "ns"; switchboard = "127.0.0.1:%(tsb)d"; }; },
  { name = "sb-tag"; protocol = "msnp"; bind = "127.0.0.1:%(tsb)d"; msnp = { role = "sb"; };
    thresholds = { tag = 5.0; drop = 1000.0; }; }
""" % PORTS
    H.start_spimwall(swtest.conf(PORTS["admin"], listeners,
                                 extra="reputation = { enabled = false; };\n"))


def tearDownModule():
    H.close()


class Conn:
    """A line-and-payload reader over one socket."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def read(self, timeout=5.0):
        """The next command: (tokens, payload or None), or None on EOF/timeout."""
        end = time.time() + timeout
        while True:
            if b"\r\n" in self.buf:
                line, rest = self.buf.split(b"\r\n", 1)
                t = line.split(b" ")
                if t[0] in (b"MSG", b"UBX") and t[-1].isdigit():
                    n = int(t[-1])
                    if len(rest) >= n:
                        self.buf = rest[n:]
                        return t, rest[:n]
                else:
                    self.buf = rest
                    return t, None
            left = end - time.time()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return None
            if not d:
                return None
            self.buf += d

    def expect(self, cmd, timeout=5.0):
        while True:
            r = self.read(timeout)
            if r is None:
                raise AssertionError("no %s" % cmd)
            if r[0][0] == cmd:
                return r

    def close(self):
        self.s.close()


def sign_in(port, who, ver=b"MSNP8", auth=b"MD5 S 0123456789abcdef"):
    """Signs who in (VER, USR I, USR S); returns the connection."""
    c = Conn(port)
    c.send(b"VER 1 " + ver + b" CVR0\r\n")
    c.expect(b"VER")
    c.send(b"USR 2 " + auth.split(b" ")[0] + b" I " + who + b"\r\n")
    c.expect(b"USR")
    c.send(b"USR 3 " + auth + b"\r\n")
    t, _ = c.expect(b"USR")
    assert t[2] == b"OK", t
    return c


def login(port, who):
    """Signs who in and goes online."""
    c = sign_in(port, who)
    c.send(b"CHG 4 NLN 0\r\n")
    c.expect(b"CHG")
    return c


def msg(trid, ack, text):
    pay = (b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
           b"X-MMS-IM-Format: FN=Arial; EF=; CO=0; CS=0; PF=22\r\n\r\n" + text)
    return b"MSG %d %s %d\r\n" % (trid, ack, len(pay)) + pay, pay


def switchboard(ns_port, sb_port, alice_name, bob_name):
    """alice opens a switchboard and invites bob; returns (alice_ns, bob_ns, alice_sb, bob_sb)."""
    a = login(ns_port, alice_name)
    b = login(ns_port, bob_name)
    a.send(b"XFR 5 SB\r\n")
    t, _ = a.expect(b"XFR")
    assert t[3] == b"127.0.0.1:%d" % sb_port, t  # only the proxy's switchboard is visible
    cookie = t[5]
    asb = Conn(sb_port)
    asb.send(b"USR 1 " + alice_name + b" " + cookie + b"\r\n")
    t, _ = asb.expect(b"USR")
    assert t[2] == b"OK", t
    asb.send(b"CAL 2 " + bob_name + b"\r\n")
    asb.expect(b"CAL")
    t, _ = b.expect(b"RNG")
    assert t[2] == b"127.0.0.1:%d" % sb_port, t
    bsb = Conn(sb_port)
    bsb.send(b"ANS 1 " + bob_name + b" " + t[4] + b" " + t[1] + b"\r\n")
    bsb.expect(b"ANS")
    asb.expect(b"JOI")
    return a, b, asb, bsb


def oim_login(port, who):
    """Signs who in (MSNP13); returns the connection and the (line tokens, payload) of the
    sign-in mail-data notification and of the new-OIM notification after it."""
    c = sign_in(port, who, b"MSNP13", b"TWN S t=ticket")
    return c, c.expect(b"MSG"), c.expect(b"MSG")


class MsnpProxy(unittest.TestCase):
    def test_oim_spim_entry_removed(self):
        who = OIM_USER.encode()
        # what the server sends, straight from it: the reference for "byte for byte"
        d, (t0, orig), (tl0, later0) = oim_login(PORTS["ns"], who)
        d.close()
        entries = re.findall(rb"<M>.*?</M>", orig)
        self.assertEqual(len(entries), 2, orig)
        spim_m, ham_m = entries
        self.assertIn(b"mallory@evil.example", spim_m)
        self.assertNotIn(OIM_LURE.encode(), orig)  # only the decoded name shows the lure
        self.assertEqual(int(t0[-1]), len(orig))

        c, (t, pay), (tl, later) = oim_login(PORTS["pns"], who)
        self.assertEqual(t[:3], [b"MSG", b"Hotmail", b"Hotmail"])
        self.assertEqual(int(t[-1]), len(pay))  # the byte count matches the new payload
        self.assertEqual(len(pay), len(orig) - len(spim_m))
        self.assertEqual(pay, orig.replace(spim_m, b""))  # only the spim entry is gone
        self.assertIn(ham_m, pay)  # the ham entry byte for byte
        self.assertNotIn(b"mallory@evil.example", pay)
        self.assertIn(b"<MD><E><I>0</I>", pay)  # the rest of <MD> kept
        self.assertIn(b"<Q><QTM>409600</QTM><QNM>204800</QNM></Q>" + ham_m + b"</MD>\r\n", pay)
        # a new OIM while signed in: its only entry is cut, <MD> stays
        self.assertIn(b"Content-Type: text/x-msmsgsoimnotification;", later0)
        lure_m = re.findall(rb"<M>.*?</M>", later0)
        self.assertEqual(len(lure_m), 1, later0)
        self.assertEqual(later, later0.replace(lure_m[0], b""))
        self.assertIn(b"Mail-Data: <MD></MD>\r\n", later)
        self.assertEqual(int(tl[-1]), len(later))
        # the session goes on
        c.send(b"SYN 6 0\r\n")
        self.assertEqual(c.expect(b"SYN")[0][1], b"6")
        c.close()
        self.assertTrue(swtest.wait_for(lambda: "what=oim" in log_text()))
        text = log_text()
        lines = [ln for ln in text.splitlines() if "what=oim" in ln]
        self.assertEqual(len(lines), 2, lines)  # the lures; ham passes without a line
        self.assertIn("sender=mallory@evil.example", lines[0])
        self.assertIn("sender=trudy@evil.example", lines[1])
        self.assertTrue(all("action=drop" in ln for ln in lines), lines)
        for secret in ("11111111-2222", "08CBD8BE", "22222222-3333", "Alice Smith", "Caf",
                       "evil-pics", "summer.zip", OIMS[OIM_USER][0]["n"][10:30]):
            self.assertNotIn(secret, text)  # no ids, names or subjects in the log

    def test_ham_passes_spim_dropped_with_acks(self):
        a, b, asb, bsb = switchboard(PORTS["pns"], PORTS["psb"], b"alice@example.com",
                                     b"bob@example.com")
        line, ham = msg(3, b"A", HAM)
        asb.send(line)
        t, pay = bsb.expect(b"MSG")
        self.assertEqual(pay, ham)  # byte for byte
        self.assertEqual(t[1], b"alice@example.com")
        self.assertEqual(asb.expect(b"ACK")[0][1], b"3")
        # ack type A: the proxy answers NAK; N: silent; then ham still flows in order
        asb.send(msg(4, b"A", SPIM)[0] + msg(5, b"N", SPIM)[0] + msg(6, b"A", b"bye")[0])
        got = [asb.read(3) for _ in range(2)]
        self.assertIn(([b"NAK", b"4"], None), got)
        self.assertIn(([b"ACK", b"6"], None), got)
        self.assertIsNone(asb.read(0.5))  # nothing for the U/N drop
        t, pay = bsb.expect(b"MSG")
        self.assertTrue(pay.endswith(b"\r\n\r\nbye"), pay)
        self.assertIsNone(bsb.read(0.5))  # no spim reached bob
        for c in (a, b, asb, bsb):
            c.close()

    def test_tag_fixes_length(self):
        a, b, asb, bsb = switchboard(PORTS["tns"], PORTS["tsb"], b"carol@example.com",
                                     b"dave@example.com")
        asb.send(msg(3, b"A", SPIM)[0])
        t, pay = bsb.expect(b"MSG")
        self.assertEqual(int(t[-1]), len(pay))
        self.assertIn(b"\r\nX-Spam-Flag: YES\r\n", pay)
        self.assertIn(b"X-Spam-Reasons: ", pay)
        self.assertTrue(pay.endswith(b"\r\n\r\n" + SPIM))
        asb.expect(b"ACK")
        for c in (a, b, asb, bsb):
            c.close()

    def test_bad_cookie_and_malformed_length(self):
        a = login(PORTS["pns"], b"erin@example.com")
        c = Conn(PORTS["psb"])
        c.send(b"USR 1 erin@example.com 1234.5678.9\r\n")
        self.assertEqual(c.read(3), ([b"911", b"1"], None))
        self.assertIsNone(c.read(1))  # closed
        m = Conn(PORTS["pns"])
        m.send(b"VER 1 MSNP8 CVR0\r\n")
        m.expect(b"VER")
        m.send(b"UUX 2 abc\r\n")
        t = m.read(3)
        self.assertEqual(t[0][0], b"200")
        self.assertIsNone(m.read(1))
        # the other session goes on
        a.send(b"SYN 6 0\r\n")
        self.assertEqual(a.expect(b"SYN")[0][1], b"6")
        self.assertIn("msnp_error", log_text())
        for x in (a, c, m):
            x.close()


    def test_switchboard_host_name_and_uuid_cookies(self):
        """A server naming its switchboard by host name with UUID cookies: XFR and RNG are
        rewritten to spimwall's switchboard listener, routed by the UUID, and chat is filtered
        there."""
        a, b, asb, bsb = switchboard(PORTS["pnns"], PORTS["psb"], b"kim@example.com",
                                     b"lee@example.com")
        ham, ham_pay = msg(3, b"A", HAM)
        asb.send(ham)
        self.assertEqual(asb.expect(b"ACK")[0], [b"ACK", b"3"])
        self.assertEqual(bsb.expect(b"MSG")[1], ham_pay)
        spim, _ = msg(4, b"A", SPIM)
        asb.send(spim)
        self.assertEqual(asb.expect(b"NAK")[0], [b"NAK", b"4"])
        self.assertIsNone(bsb.read(1))
        with open(H.path("nsb.log"), "rb") as f:
            seen = f.read()
        self.assertIn(HAM, seen)  # the real switchboard relayed the ham...
        self.assertNotIn(SPIM, seen)  # ...and never saw the lure
        for x in (a, b, asb, bsb):
            x.close()

    def test_unusable_switchboard_address_never_reaches_client(self):
        """XFR and RNG naming a switchboard spimwall cannot stand in for: the client gets
        601 for its XFR and no RNG, never the real address; its session goes on."""
        far = FAR_HOST.encode()
        a = login(PORTS["pfns"], b"ivan@example.com")
        a.send(b"XFR 5 SB\r\n")
        t, _ = a.read(5)
        self.assertEqual(t, [b"601", b"5"])
        # an invitation: judy calls ivan from the server's own switchboard, directly
        j = login(PORTS["fns"], b"judy@example.com")
        j.send(b"XFR 5 SB\r\n")
        t, _ = j.expect(b"XFR")
        self.assertTrue(t[3].startswith(far), t)  # what the server really says
        jsb = Conn(PORTS["fsb"])
        jsb.send(b"USR 1 judy@example.com " + t[5] + b"\r\n")
        self.assertEqual(jsb.expect(b"USR")[0][2], b"OK")
        jsb.send(b"CAL 2 ivan@example.com\r\n")
        jsb.expect(b"CAL")
        a.send(b"SYN 6 0\r\n")
        got = []
        while True:
            r = a.read(3)
            self.assertIsNotNone(r, got)
            got.append(r[0])
            if r[0][0] == b"SYN":
                break
        self.assertEqual(got[-1][1], b"6")
        self.assertFalse([g for g in got if g[0] == b"RNG"], got)
        self.assertIn("event=sb_refused listener=ns-far command=XFR", log_text())
        self.assertIn("event=sb_refused listener=ns-far command=RNG", log_text())
        for x in (a, j, jsb):
            x.close()

    def test_fanout_detected_others_flow(self):
        """One account opens switchboards to many contacts and sends the same link: fan-out is
        detected, the later copies and the account's further messages are dropped, and another
        pair's chat flows. Its own daemon, with the reputation cache on."""
        ports = {n: free_port() for n in ("fns", "fsb", "fadmin")}
        listeners = """
  { name = "fns"; protocol = "msnp"; bind = "127.0.0.1:%(fns)d";
    upstream = { address = "127.0.0.1:%(ns)d"; };
    msnp = { role = "ns"; switchboard = "127.0.0.1:%(fsb)d"; }; },
  { name = "fsb"; protocol = "msnp"; bind = "127.0.0.1:%(fsb)d"; msnp = { role = "sb"; }; }
""" % dict(ports, ns=PORTS["ns"])
        opened = []
        d = H.start_spimwall(swtest.conf(ports["fadmin"], listeners), name="fanout")
        try:
            contacts = [b"fan%d@example.com" % i for i in range(8)]
            for who in contacts:  # online, so that CAL rings them
                opened.append(login(PORTS["ns"], who))
            a, b, asb, bsb = switchboard(ports["fns"], ports["fsb"], b"gail@example.com",
                                         b"hank@example.com")
            opened += [a, b, asb, bsb]
            fan = login(ports["fns"], b"mallory@example.com")
            opened.append(fan)
            lure = b"hey, have a look at this http://fresh-promo.example/offer"
            for i, who in enumerate(contacts):
                fan.send(b"XFR %d SB\r\n" % (10 + i))
                t, _ = fan.expect(b"XFR")
                sb = Conn(ports["fsb"])
                opened.append(sb)
                sb.send(b"USR 1 mallory@example.com " + t[5] + b"\r\n")
                self.assertEqual(sb.expect(b"USR")[0][2], b"OK")
                sb.send(b"CAL 2 " + who + b"\r\n")
                sb.expect(b"CAL")
                sb.send(msg(3, b"N", lure + b" #%d" % i)[0])
                # another pair chats meanwhile
                asb.send(msg(10 + i, b"N", b"gail says %d" % i)[0])
            sb.send(msg(4, b"N", b"just saying hi")[0])  # quarantined now
            got = []
            while len(got) < 8:
                r = bsb.read(5)
                self.assertIsNotNone(r, got)
                if r[0][0] == b"MSG":
                    got.append(r[1].split(b"\r\n\r\n", 1)[1])
            self.assertEqual(got, [b"gail says %d" % i for i in range(8)])
            time.sleep(0.5)
            with open(H.path("sb.log"), "rb") as f:
                seen = f.read()
            passed = [i for i in range(8) if lure + b" #%d" % i in seen]
            # the first copies pass (an unknown link), the later ones are dropped
            self.assertGreaterEqual(len(passed), 3)
            self.assertLess(len(passed), 8)
            self.assertEqual(passed, list(range(len(passed))))
            self.assertNotIn(b"just saying hi", seen)
            text = H.log_text("fanout")
            self.assertIn("REP_FANOUT", text)
            self.assertIn("QUARANTINED", text)
        finally:
            for c in opened:
                c.close()
            d.kill()
            d.wait()

if __name__ == "__main__":
    unittest.main(verbosity=2)
