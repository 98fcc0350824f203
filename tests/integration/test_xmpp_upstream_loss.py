#!/usr/bin/python3
"""xmpp-c2s when the server goes away mid-session (issue 4): clients are logged in through
spimwall to a real Prosody and chatting; then Prosody is killed outright (SIGKILL: no stream
close, the kernel just closes its sockets) and, in a second round, stopped the normal way
(SIGTERM). Each client gets one clean end of its stream, then the TCP close:
<remote-connection-failed/> and </stream:stream> when the server's connection just closes,
the server's own stream close when it sends one. spimwall keeps running and answers the next client with
<remote-connection-failed/> while the server is down, and serves it again once it is back.
Everything on loopback, started and stopped here.
"""
import os
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import swtest  # noqa: E402
from swtest import RawXmpp, wait_for, port_open  # noqa: E402

H = swtest.Harness("sw_xloss_")
PORTS = H.ports
USERS = ["alice:alice-pw", "bob:bob-pw"]
DAEMON = None


def start_prosody():
    H.prosody_dirs.clear()  # the same directory is started again after each stop
    return H.start_prosody(PORTS["prosody"], USERS, env={"SW_PROSODY_PLAINTEXT": "1"})


def setUpModule():
    global DAEMON
    H.open("prosody", "plain", "admin")
    start_prosody()
    listeners = """
  { name = "plain"; protocol = "xmpp-c2s"; bind = "127.0.0.1:%(plain)d"; tls = "none";
    upstream = { address = "127.0.0.1:%(prosody)d"; }; }
""" % PORTS
    DAEMON = H.start_spimwall(swtest.conf(PORTS["admin"], listeners))


def tearDownModule():
    H.close()


def prosody_pid():
    with open(H.path("prosody", "prosody.pid")) as f:
        return int(f.read().strip())


def logged_in_pair():
    """alice and bob logged in and bound through spimwall; alice's ham has reached bob."""
    a, b = RawXmpp(PORTS["plain"]), RawXmpp(PORTS["plain"])
    a.login("alice", "alice-pw")
    a.bind("a")
    b.login("bob", "bob-pw")
    b.bind("b")
    b.send("<presence/>")
    a.send("<message to='bob@localhost/b' type='chat' id='m1'><body>still there?</body></message>")
    while True:
        el = b.next(10)
        if el.tag == "{jabber:client}message":
            break
    assert el.findtext("{jabber:client}body") == "still there?"
    return a, b


class UpstreamLoss(unittest.TestCase):
    def check_server_back(self):
        start_prosody()
        a, b = logged_in_pair()
        a.close()
        b.close()

    def test_killed_server_gives_remote_connection_failed(self):
        a, b = logged_in_pair()
        os.kill(prosody_pid(), signal.SIGKILL)
        for c in (a, b):
            out = c.read_to_eof(10)
            self.assertIn(b"<stream:error><remote-connection-failed", out)
            self.assertTrue(out.endswith(b"</stream:stream>"), out)
            c.close()
        self.assertTrue(wait_for(lambda: not port_open(PORTS["prosody"]), 10))
        self.assertIsNone(DAEMON.poll(), "spimwall must keep running")
        # the next client, while the server is down: the same error at once
        c = RawXmpp(PORTS["plain"])
        c.send(swtest.XMPP_HDR)
        out = c.read_to_eof(10)
        c.close()
        self.assertIn(b"<remote-connection-failed", out)
        self.assertTrue(out.endswith(b"</stream:stream>"), out)
        self.assertIn("upstream closed", H.log_text())
        self.check_server_back()

    def test_stopped_server_closes_streams_cleanly(self):
        a, b = logged_in_pair()
        os.kill(prosody_pid(), signal.SIGTERM)
        for c in (a, b):
            out = c.read_to_eof(15)
            # Prosody 0.12 from Debian closes its sockets on SIGTERM without ending the
            # streams; whichever way the server leaves, each client stream ends exactly once:
            # with the server's own close passed through, or with ours after a bare TCP close
            self.assertTrue(out.endswith(b"</stream:stream>"), out)
            self.assertEqual(out.count(b"</stream:stream>"), 1, out)
            self.assertTrue(b"system-shutdown" in out or b"<remote-connection-failed" in out,
                            out)
            c.close()
        self.assertTrue(wait_for(lambda: not port_open(PORTS["prosody"]), 15))
        self.assertIsNone(DAEMON.poll(), "spimwall must keep running")
        self.check_server_back()


if __name__ == "__main__":
    unittest.main(verbosity=2)
