#!/usr/bin/python3
"""A small MSNP test server (notification server plus switchboard) for spimwall's tests.

Speaks enough of MSNP8..MSNP18 for real flows: VER/CVR, USR login (MD5 for MSNP8, TWN with a
stub ticket for later versions), SYN, CHG (presence, NLN to online contacts), UUX (personal
message, UBX to contacts), XFR SB (its own switchboard address and a fresh cookie), CAL (RNG to
the callee's NS connection), and on the switchboard USR/ANS by cookie (911 for a bad one),
JOI/IRO, MSG relayed to the other participants with ACK/NAK per ack type, OUT, and offline
messages: a user with stored OIMs gets the MSNP13 initial mail-data notification
(`MSG Hotmail Hotmail len`, `text/x-msmsgsinitialmdatanotification`, one <M> per OIM in the
Mail-Data header) right after signing in, then one `text/x-msmsgsoimnotification` per OIM
marked "later" (as if it had arrived while signed in). The OIM bodies (fetched over SOAP) are
not served.

    msnp_server.py --ns-port P --sb-port Q [--sb-host H] [--oims FILE] [--cookies uuid]
    # prints "ready"; --sb-host is the switchboard host named in XFR/RNG (an address or a
    # name), --cookies the cookie style (default MSN's dotted numbers)

Every account exists and any password is accepted (the proxy is under test, not the login).
Received switchboard MSG payloads are appended to --log FILE when given. --oims names a JSON
file {"passport": [{"e": sender, "n": name, "su": subject, "id": guid, "later": bool}]}: name and
subject are written as given (RFC 2047 encoded-words or plain text, XML-escaped by the file's
author); the OIMs are never deleted, so every sign-in lists them again.
"""
import argparse
import itertools
import json
import socket
import threading

LOCK = threading.Lock()
NS_CONNS = {}  # passport -> NS connection
COOKIES = {}  # cookie -> (passport, session id or None)
SESSIONS = {}  # session id -> list of (passport, conn)
SEQ = itertools.count(1000)
ARGS = None
OIMS = {}  # passport -> stored offline messages (--oims)


def payload_cmd(cmd):
    return cmd in (b"MSG", b"UUX", b"UBX", b"ADL", b"RML", b"QRY", b"GCF", b"NOT", b"UUN", b"UBN")


def commands(c):
    """Yields (tokens, payload or None) for each command from socket c."""
    buf = b""
    while True:
        while b"\n" in buf:
            line, rest = buf.split(b"\n", 1)
            line = line.rstrip(b"\r")
            toks = line.split(b" ")
            if payload_cmd(toks[0]) and toks[-1].isdigit():
                n = int(toks[-1])
                while len(rest) < n:
                    d = c.recv(65536)
                    if not d:
                        return
                    rest += d
                buf = rest[n:]
                yield toks, rest[:n]
            else:
                buf = rest
                yield toks, None
        d = c.recv(65536)
        if not d:
            return
        buf += d


def send(c, data):
    try:
        c.sendall(data)
    except OSError:
        pass


def mail_data(oims, initial):
    """The Mail-Data XML listing oims: one <M> per OIM (MSNP13 layout), after the inbox counts
    and quota in the sign-in notification."""
    md = "<MD>"
    if initial:
        md += ("<E><I>0</I><IU>0</IU><O>0</O><OU>0</OU></E>"
               "<Q><QTM>409600</QTM><QNM>204800</QNM></Q>")
    for k, o in enumerate(oims):
        md += ("<M><T>11</T><S>6</S><RT>2007-05-14T15:52:%02d.377Z</RT><RS>0</RS><SZ>950</SZ>"
               "<E>%s</E><I>%s</I><F>00000000-0000-0000-0000-000000000009</F><N>%s</N>"
               "<SU>%s</SU></M>" % (k % 60, o["e"], o["id"], o["n"], o["su"]))
    return md + "</MD>"


def oim_notification(oims, initial):
    """MSG Hotmail Hotmail: the sign-in list of oims, or one OIM arrived while signed in."""
    kind = "initialmdatanotification" if initial else "oimnotification"
    pay = ("MIME-Version: 1.0\r\n"
           "Content-Type: text/x-msmsgs%s; charset=UTF-8\r\n"
           "Mail-Data: %s\r\n"
           "Inbox-URL: /cgi-bin/HoTMaiL\r\nFolders-URL: /cgi-bin/folders\r\n"
           "Post-URL: http://www.hotmail.com\r\n\r\n" % (kind, mail_data(oims, initial))).encode()
    return b"MSG Hotmail Hotmail %d\r\n" % len(pay) + pay


def ns(c):
    me = None
    try:
        for t, pay in commands(c):
            cmd = t[0]
            if cmd == b"VER":
                send(c, b"VER " + t[1] + b" " + t[2] + b"\r\n")
            elif cmd == b"CVR":
                send(c, b"CVR " + t[1] + b" 7.0.0813 7.0.0813 1.0.0000 http://x http://x\r\n")
            elif cmd == b"USR" and len(t) >= 5 and t[3] == b"I":
                me = t[4]
                ch = b"MD5 S 1013928519.693957190" if t[2] == b"MD5" else b"TWN S ct=1,rver=1"
                send(c, b"USR " + t[1] + b" " + ch + b"\r\n")
            elif cmd == b"USR" and len(t) >= 5 and t[3] == b"S":
                with LOCK:
                    NS_CONNS[me] = c
                send(c, b"USR " + t[1] + b" OK " + me + b" " + me.split(b"@")[0] + b" 1 0\r\n")
                oims = OIMS.get(me.decode(errors="replace"), [])
                stored = [o for o in oims if not o.get("later")]
                if stored:
                    send(c, oim_notification(stored, True))
                for o in oims:
                    if o.get("later"):
                        send(c, oim_notification([o], False))
            elif cmd == b"SYN":
                send(c, b"SYN " + t[1] + b" 1 0 0\r\n")
            elif cmd == b"CHG":
                send(c, b"CHG " + t[1] + b" " + t[2] + b" 0\r\n")
                with LOCK:
                    others = [(p, x) for p, x in NS_CONNS.items() if p != me]
                for p, x in others:
                    send(x, b"NLN " + t[2] + b" " + me + b" " + me.split(b"@")[0] + b" 0\r\n")
            elif cmd == b"UUX":
                send(c, b"UUX " + t[1] + b" 0\r\n")
                with LOCK:
                    others = [x for p, x in NS_CONNS.items() if p != me]
                for x in others:
                    send(x, b"UBX " + me + b" %d\r\n" % len(pay) + pay)
            elif cmd == b"XFR" and t[2] == b"SB":
                cookie = new_cookie()
                with LOCK:
                    COOKIES[cookie] = (me, None)
                send(c, b"XFR " + t[1] + b" SB " + ARGS.sb_host.encode() + b":%d" % ARGS.sb_port +
                     b" CKI " + cookie + b" U messenger.msn.com 1\r\n")
            elif cmd == b"OUT":
                break
    finally:
        with LOCK:
            if me is not None and NS_CONNS.get(me) is c:
                del NS_CONNS[me]
        c.close()


def sb(c):
    me, sid = None, None
    try:
        for t, pay in commands(c):
            cmd = t[0]
            if me is None:
                ok = False
                if cmd in (b"USR", b"ANS") and len(t) >= 4:
                    with LOCK:
                        ent = COOKIES.pop(t[3], None)
                    if ent is not None and ent[0] == t[2]:
                        ok = True
                        me = t[2]
                        sid = ent[1] if cmd == b"ANS" else next(SEQ)
                        with LOCK:
                            members = SESSIONS.setdefault(sid, [])
                            prior = list(members)
                            members.append((me, c))
                        if cmd == b"USR":
                            send(c, b"USR " + t[1] + b" OK " + me + b" " + me.split(b"@")[0] + b"\r\n")
                        else:
                            for i, (p, _) in enumerate(prior):
                                send(c, b"IRO %s %d %d %s %s\r\n" % (t[1], i + 1, len(prior), p,
                                                                      p.split(b"@")[0]))
                            send(c, b"ANS " + t[1] + b" OK\r\n")
                            for p, x in prior:
                                send(x, b"JOI " + me + b" " + me.split(b"@")[0] + b"\r\n")
                if not ok:
                    send(c, b"911 " + (t[1] if len(t) > 1 else b"0") + b"\r\n")
                    break
                continue
            if cmd == b"CAL":
                callee = t[2]
                cookie = new_cookie()
                with LOCK:
                    COOKIES[cookie] = (callee, sid)
                    target = NS_CONNS.get(callee)
                if target is None:
                    send(c, b"217 " + t[1] + b"\r\n")
                    continue
                send(c, b"CAL " + t[1] + b" RINGING %d\r\n" % sid)
                send(target, b"RNG %d %s:%d CKI %s %s %s\r\n" % (
                    sid, ARGS.sb_host.encode(), ARGS.sb_port, cookie, me, me.split(b"@")[0]))
            elif cmd == b"MSG":
                if ARGS.log:
                    with LOCK, open(ARGS.log, "ab") as f:
                        f.write(me + b" " + pay + b"\n\x00\n")
                with LOCK:
                    others = [x for p, x in SESSIONS.get(sid, []) if x is not c]
                for x in others:
                    send(x, b"MSG %s %s %d\r\n" % (me, me.split(b"@")[0], len(pay)) + pay)
                if t[2] in (b"A", b"D"):
                    send(c, (b"ACK " if others else b"NAK ") + t[1] + b"\r\n")
            elif cmd == b"OUT":
                break
    finally:
        with LOCK:
            if sid in SESSIONS:
                SESSIONS[sid] = [(p, x) for p, x in SESSIONS[sid] if x is not c]
        c.close()


def serve(port, fn):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    return s


def loop(s, fn):
    while True:
        c, _ = s.accept()
        threading.Thread(target=fn, args=(c,), daemon=True).start()


def new_cookie():
    """A switchboard cookie in the style --cookies asks for: MSN's dotted numbers, or a
    braced UUID as later servers used."""
    if ARGS.cookies == "uuid":
        return b"{%08X-%04X-4D0E-9C2A-%012X}" % (next(SEQ), next(SEQ), next(SEQ))
    return b"%d.%d.%d" % (next(SEQ), next(SEQ), next(SEQ))


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--ns-port", type=int, required=True)
    ap.add_argument("--sb-port", type=int, required=True)
    ap.add_argument("--sb-host", default="127.0.0.1")
    ap.add_argument("--log")
    ap.add_argument("--oims")
    ap.add_argument("--cookies", choices=("dotted", "uuid"), default="dotted")
    ARGS = ap.parse_args()
    if ARGS.oims:
        with open(ARGS.oims) as f:
            OIMS.update(json.load(f))
    a, b = serve(ARGS.ns_port, ns), serve(ARGS.sb_port, sb)
    threading.Thread(target=loop, args=(a, ns), daemon=True).start()
    print("ready", flush=True)
    loop(b, sb)


if __name__ == "__main__":
    main()
