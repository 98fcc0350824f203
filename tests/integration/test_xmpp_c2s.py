#!/usr/bin/python3
"""xmpp-c2s end to end (issue 4): real slixmpp clients log in through spimwall with STARTTLS
and with direct TLS to a real Prosody (plaintext loopback backend). Ham arrives byte-intact and
in order, spim at tag level arrives with SHIM headers, spim at drop level never arrives and the
sender gets the bounce, Stream Management survives drops, fan-out is detected while others'
chat flows, malformed / restricted / oversize input and a dead upstream give the stream errors
of RFC 6120. Everything on loopback, started and stopped here.
"""
import asyncio
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import swtest  # noqa: E402
from swtest import RawXmpp, connect, make_client, until  # noqa: E402

H = swtest.Harness("sw_xc2s_")
PORTS = H.ports
log_text = H.log_text
HDR = swtest.XMPP_HDR


def setUpModule():
    H.open("prosody", "starttls", "direct", "plain", "tagonly", "down", "admin", "dead")
    users = ["alice:alice-pw", "bob:bob-pw", "carol:carol-pw", "dave:dave-pw", "erin:erin-pw",
             "frank:frank-pw", "gina:gina-pw"]
    H.start_prosody(PORTS["prosody"], users, env={"SW_PROSODY_PLAINTEXT": "1"})
    swtest.self_signed(H.path("key.pem"), H.path("cert.pem"))
    certs = 'certificates = ( { names = ["localhost"]; cert = "%s/cert.pem"; key = "%s/key.pem"; } );' % (H.tmp, H.tmp)
    listeners = """
  { name = "starttls"; protocol = "xmpp-c2s"; bind = "127.0.0.1:%(starttls)d"; tls = "starttls";
    %(certs)s upstream = { address = "127.0.0.1:%(prosody)d"; }; },
  { name = "direct"; protocol = "xmpp-c2s"; bind = "127.0.0.1:%(direct)d"; tls = "direct";
    %(certs)s upstream = { address = "127.0.0.1:%(prosody)d"; }; },
  { name = "plain"; protocol = "xmpp-c2s"; bind = "127.0.0.1:%(plain)d"; tls = "none";
    xmpp = { stanza_max = 8192; };
    upstream = { address = "127.0.0.1:%(prosody)d"; }; },
  { name = "tagonly"; protocol = "xmpp-c2s"; bind = "127.0.0.1:%(tagonly)d"; tls = "none";
    thresholds = { tag = 5.0; drop = 1000.0; };
    upstream = { address = "127.0.0.1:%(prosody)d"; }; },
  { name = "down"; protocol = "xmpp-c2s"; bind = "127.0.0.1:%(down)d"; tls = "none";
    upstream = { address = "127.0.0.1:%(dead)d"; }; }
""" % dict(PORTS, certs=certs)
    H.start_spimwall(swtest.conf(PORTS["admin"], listeners))


def tearDownModule():
    H.close()


SPIM = "lol! see it! u'll like it http://bit.ly/x%d http://evil.example/pic%d.zip"
HAM = "ham %d: meeting moved to 3pm, bring the <draft> & the slides"


def raw_session(port, payloads, wait=3.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    out = b""
    for p in payloads:
        s.sendall(p)
        time.sleep(0.2)
    end = time.time() + wait
    try:
        while time.time() < end:
            d = s.recv(65536)
            if not d:
                out += b"<EOF>"
                break
            out += d
            if b"</stream:stream>" in d:
                pass
    except socket.timeout:
        pass
    s.close()
    return out


class XmppC2s(unittest.TestCase):
    def chat(self, port, mode):
        async def run():
            a = make_client("alice@localhost/t", "alice-pw")
            b = make_client("bob@localhost/t", "bob-pw")
            connect(a, port, mode)
            connect(b, port, mode)
            await asyncio.wait_for(asyncio.gather(a.ready, b.ready), 30)
            for i in range(25):
                a.send_message(mto="bob@localhost", mbody=HAM % i, mtype="chat")
                if i % 5 == 0:
                    a.send_message(mto="bob@localhost", mbody=SPIM % (i, i), mtype="chat")
            await until(lambda: len(b.got) >= 25 and len(a.errors) >= 5)
            await asyncio.sleep(0.5)
            a.disconnect()
            b.disconnect()
            await asyncio.sleep(0.3)
            return a, b
        return asyncio.run(run())

    def check_chat(self, port, mode):
        a, b = self.chat(port, mode)
        self.assertEqual(b.got, [HAM % i for i in range(25)])  # intact, in order, no spim
        self.assertEqual(len(a.errors), 5)
        for e in a.errors:
            self.assertIn("policy-violation", str(e))
            self.assertEqual(e["from"].bare, "bob@localhost")

    def test_starttls_ham_and_drop(self):
        self.check_chat(PORTS["starttls"], "starttls")

    def test_direct_tls_ham_and_drop(self):
        self.check_chat(PORTS["direct"], "direct")

    def test_tag_level_gets_shim(self):
        async def run():
            a = make_client("carol@localhost/t", "carol-pw")
            b = make_client("dave@localhost/t", "dave-pw")
            connect(a, PORTS["tagonly"], "plain")
            connect(b, PORTS["tagonly"], "plain")
            await asyncio.wait_for(asyncio.gather(a.ready, b.ready), 30)
            a.send_message(mto="dave@localhost", mbody="hello dave", mtype="chat")
            a.send_message(mto="dave@localhost", mbody=SPIM % (90, 90), mtype="chat")
            await until(lambda: len(b.got) >= 2)
            a.disconnect()
            b.disconnect()
            await asyncio.sleep(0.3)
            return b
        b = asyncio.run(run())
        self.assertEqual(len(b.raw), 2)
        self.assertNotIn("http://jabber.org/protocol/shim", b.raw[0])
        self.assertIn("http://jabber.org/protocol/shim", b.raw[1])
        self.assertIn('name="X-Spam-Flag">YES<', b.raw[1])
        self.assertIn("X-Spam-Reasons", b.raw[1])
        self.assertEqual(b.got[1], SPIM % (90, 90))

    def test_stream_management_survives_drops(self):
        async def run():
            a = make_client("erin@localhost/sm", "erin-pw", sm=True)
            b = make_client("bob@localhost/sm", "bob-pw", sm=True)
            connect(a, PORTS["starttls"], "starttls")
            connect(b, PORTS["starttls"], "starttls")
            await asyncio.wait_for(asyncio.gather(a.ready, b.ready), 30)
            for i in range(6):
                a.send_message(mto="bob@localhost", mbody="sm ham %d" % i, mtype="chat")
                a.send_message(mto="bob@localhost", mbody=SPIM % (200 + i, 200 + i), mtype="chat")
            await until(lambda: len(b.got) >= 6 and len(a.errors) >= 6)
            a.plugin["xep_0198"].request_ack()
            b.plugin["xep_0198"].request_ack()
            sm = a.plugin["xep_0198"]
            await until(lambda: sm.last_ack == sm.seq, 10)
            acked = (sm.last_ack, sm.seq)
            a.send_message(mto="bob@localhost", mbody="after acks", mtype="chat")
            await until(lambda: "after acks" in b.got)
            res = (acked[0], acked[1], list(b.got), len(a.errors), a.stream_errors + b.stream_errors)
            a.disconnect()
            b.disconnect()
            await asyncio.sleep(0.3)
            return res
        last_ack, seq, got, bounces, serrs = asyncio.run(run())
        # the server's acks, corrected for the 6 drops, cover exactly what the client sent
        self.assertEqual(last_ack, seq)
        self.assertEqual(got, ["sm ham %d" % i for i in range(6)] + ["after acks"])
        self.assertEqual(bounces, 6)
        self.assertEqual(serrs, [])

    def test_stream_management_resume_after_drops(self):
        """Drops and bounces shift both counters; a resume on a new TCP connection must still
        carry h values that Prosody and the client each find consistent (XEP-0198 3, 5)."""
        NS = RawXmpp.NS_SM
        bob = RawXmpp(PORTS["prosody"])  # the recipient, straight to Prosody
        bob.login("bob", "bob-pw")
        bob.bind("resume-rcpt")
        bob.send("<presence/>")
        g = RawXmpp(PORTS["plain"])
        try:
            g.login("gina", "gina-pw")
            g.bind("resume")
            g.send("<enable xmlns='%s' resume='true'/>" % NS)
            enabled = g.expect("{%s}enabled" % NS)
            previd = enabled.get("id")
            self.assertIsNotNone(previd)
            g.counting = True
            msg = "<message to='bob@localhost' type='chat' id='%s'><body>%s</body></message>"
            sent = [("h1", "resume ham 1"), ("s1", SPIM % (301, 301)), ("h2", "resume ham 2"),
                    ("s2", SPIM % (302, 302))]
            for mid, body in sent:
                g.send(msg % (mid, body))
            g.send("<r xmlns='%s'/>" % NS)
            a = g.expect("{%s}a" % NS)
            # the client sent 4 stanzas: Prosody handled 2, the proxy dropped 2
            self.assertEqual(a.get("h"), "4")
            bounces = []
            while len(bounces) < 2:
                el = g.take("{jabber:client}message")
                if el.get("type") == "error":
                    bounces.append(el.get("id"))
            self.assertEqual(sorted(bounces), ["s1", "s2"])
            client_h = g.inbound  # the bounces (inserted by the proxy) and whatever Prosody sent
            self.assertGreaterEqual(client_h, 2)
            # the TCP connection dies without a stream close
            g.sock.shutdown(socket.SHUT_RDWR)
            g.close()
            time.sleep(0.5)

            g2 = RawXmpp(PORTS["plain"])
            g2.login("gina", "gina-pw")
            g2.send("<resume xmlns='%s' h='%d' previd='%s'/>" % (NS, client_h, previd))
            resumed = g2.expect("{%s}resumed" % NS)
            self.assertEqual(resumed.get("previd"), previd)
            self.assertEqual(resumed.get("h"), "4")  # in the client's numbering
            g2.counting = True
            g2.send(msg % ("h3", "resume ham 3"))
            g2.send(msg % ("s3", SPIM % (303, 303)))
            g2.send("<r xmlns='%s'/>" % NS)
            self.assertEqual(g2.expect("{%s}a" % NS).get("h"), "6")
            bounce = g2.take("{jabber:client}message")
            self.assertEqual((bounce.get("type"), bounce.get("id")), ("error", "s3"))
            # acking the bounce too must not look like "more than the server sent" to Prosody
            g2.send("<a xmlns='%s' h='%d'/>" % (NS, client_h + g2.inbound))
            g2.send(msg % ("h4", "resume ham 4"))
            g2.send("<r xmlns='%s'/>" % NS)
            self.assertEqual(g2.expect("{%s}a" % NS).get("h"), "7")
            g2.send("</stream:stream>")
            g2.close()

            bob.counting = True
            got = []
            while len(got) < 4:
                el = bob.take("{jabber:client}message")
                body = el.find("{jabber:client}body")
                if body is not None:
                    got.append(body.text)
            self.assertEqual(got, ["resume ham 1", "resume ham 2", "resume ham 3", "resume ham 4"])
        finally:
            g.close()
            bob.close()
        self.assertNotIn("handled-count-too-high", log_text())

    def test_fanout_detected_others_flow(self):
        async def run():
            # its own account: fan-out quarantines the sender for an hour
            a = make_client("frank@localhost/fan", "frank-pw")
            c = make_client("carol@localhost/fan", "carol-pw")
            d = make_client("dave@localhost/fan", "dave-pw")
            for x in (a, c, d):
                connect(x, PORTS["plain"], "plain")
            await asyncio.wait_for(asyncio.gather(a.ready, c.ready, d.ready), 30)
            for i in range(20):
                a.send_message(mto="contact%d@localhost" % i,
                               mbody="hey, have a look at this http://fresh-promo.example/offer",
                               mtype="chat")
                c.send_message(mto="dave@localhost", mbody="carol says %d" % i, mtype="chat")
            await until(lambda: len(d.got) >= 20 and
                        sum("policy-violation" in str(e) for e in a.errors) >= 10)
            await asyncio.sleep(0.5)
            pv = sum("policy-violation" in str(e) for e in a.errors)
            for x in (a, c, d):
                x.disconnect()
            await asyncio.sleep(0.3)
            return pv, list(d.got)
        pv, got = asyncio.run(run())
        self.assertGreaterEqual(pv, 10)  # later copies dropped (first ones pass: unknown link)
        self.assertLess(pv, 20)
        self.assertEqual(got, ["carol says %d" % i for i in range(20)])
        self.assertIn("REP_FANOUT", log_text())

    def test_malformed_xml(self):
        out = raw_session(PORTS["plain"], [HDR, b"<message><body>x</bod></message>"])
        self.assertIn(b"<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>", out)
        self.assertTrue(out.endswith(b"</stream:stream><EOF>"), out[-200:])

    def test_restricted_xml(self):
        out = raw_session(PORTS["plain"], [HDR, b"<!-- a comment -->"])
        self.assertIn(b"<restricted-xml xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>", out)
        out = raw_session(PORTS["plain"], [HDR, b"<message><body>&foo;</body></message>"])
        self.assertIn(b"<restricted-xml", out)

    def test_oversize_stanza(self):
        out = raw_session(PORTS["plain"], [HDR, b"<message><body>" + b"a" * 20000 + b"</body></message>"])
        self.assertIn(b"<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>", out)
        self.assertTrue(out.endswith(b"<EOF>"))

    def test_upstream_unreachable(self):
        out = raw_session(PORTS["down"], [HDR])
        self.assertTrue(out.startswith(b"<?xml version='1.0'?><stream:stream "), out)
        self.assertIn(b"<stream:error><remote-connection-failed", out)
        self.assertTrue(out.endswith(b"</stream:stream><EOF>"), out)

    def test_other_sessions_unaffected_by_errors(self):
        async def run():
            b = make_client("bob@localhost/calm", "bob-pw")
            a = make_client("alice@localhost/calm", "alice-pw")
            connect(a, PORTS["plain"], "plain")
            connect(b, PORTS["plain"], "plain")
            await asyncio.wait_for(asyncio.gather(a.ready, b.ready), 30)
            a.send_message(mto="bob@localhost", mbody="before", mtype="chat")
            await until(lambda: "before" in b.got)
            await asyncio.get_event_loop().run_in_executor(
                None, raw_session, PORTS["plain"], [HDR, b"<a><b></a>"], 1.0)
            a.send_message(mto="bob@localhost", mbody="after", mtype="chat")
            await until(lambda: "after" in b.got)
            a.disconnect()
            b.disconnect()
            await asyncio.sleep(0.3)
            return list(b.got)
        self.assertEqual(asyncio.run(run()), ["before", "after"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
