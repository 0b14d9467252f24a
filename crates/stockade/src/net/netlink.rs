//! A synchronous rtnetlink client: one request, its acknowledgement (or the kernel's error), or a
//! dump. Messages are built and parsed by `netlink-packet-route`; the socket is `netlink-sys`'s
//! (as youki does: no async runtime for a handful of round trips). Several requests may go in one
//! `send` ([`Rtnl::batch`]): the kernel handles them in order, and each is acknowledged.

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// An rtnetlink socket, in the network namespace it was made in.
pub struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// How a request is made.
#[derive(Clone, Copy)]
pub enum Req {
    /// NLM_F_CREATE | NLM_F_EXCL: fails with EEXIST if it is there.
    Create,
    /// A plain request (delete, set, get).
    Plain,
}

impl Rtnl {
    /// A socket in our own network namespace.
    pub fn new() -> io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl::wrap(sock))
    }

    /// A socket another process made (in its network namespace) and sent us.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Rtnl> {
        // SAFETY: the descriptor is ours (moved in) and is a netlink socket (checked by the
        // kernel at the first send: anything else fails with ENOTSOCK or EOPNOTSUPP).
        let mut sock = unsafe { Socket::from_raw_fd(fd.into_raw_fd()) };
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl::wrap(sock))
    }

    fn wrap(sock: Socket) -> Rtnl {
        let _ = sock.set_ext_ack(true);
        Rtnl {
            sock,
            seq: 0,
            buf: vec![0; 32 * 1024],
        }
    }

    fn frame(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Vec<u8> {
        self.seq += 1;
        let mut hdr = NetlinkHeader::default();
        hdr.flags = flags;
        hdr.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(hdr, NetlinkPayload::from(msg));
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        out
    }

    /// One request, acknowledged.
    pub fn request(&mut self, msg: RouteNetlinkMessage, req: Req) -> io::Result<()> {
        self.batch(vec![(msg, req)])
    }

    /// Several requests in one send, each acknowledged; the first error is returned (the ones
    /// before it took effect, the ones after it were still handled by the kernel).
    pub fn batch(&mut self, msgs: Vec<(RouteNetlinkMessage, Req)>) -> io::Result<()> {
        let mut out = vec![];
        let first = self.seq + 1;
        let n = msgs.len() as u32;
        for (m, req) in msgs {
            let flags = NLM_F_REQUEST
                | NLM_F_ACK
                | match req {
                    Req::Create => NLM_F_CREATE | NLM_F_EXCL,
                    Req::Plain => 0,
                };
            out.extend(self.frame(m, flags));
        }
        self.sock.send(&out, 0)?;
        let mut acked = 0;
        let mut err = None;
        while acked < n {
            let len = self.sock.recv(&mut &mut self.buf[..], 0)?;
            let mut off = 0;
            while off < len {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..len])
                    .map_err(|e| io::Error::other(format!("netlink: {e}")))?;
                let l = msg.header.length as usize;
                let seq = msg.header.sequence_number;
                if let NetlinkPayload::Error(e) = &msg.payload {
                    if seq >= first && seq < first + n {
                        acked += 1;
                        if e.code.is_some() && err.is_none() {
                            err = Some(e.to_io());
                        }
                    }
                }
                if l == 0 {
                    break;
                }
                off += nl_align(l);
            }
        }
        err.map_or(Ok(()), Err)
    }

    /// A request answered with one message (`RTM_GETLINK` of a name), or the kernel's error.
    pub fn get(&mut self, msg: RouteNetlinkMessage) -> io::Result<RouteNetlinkMessage> {
        let mut got = self.exchange(msg, NLM_F_REQUEST)?;
        got.pop()
            .ok_or_else(|| io::Error::other("netlink: no answer"))
    }

    /// A dump: every message until NLMSG_DONE.
    pub fn dump(&mut self, msg: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_DUMP)
    }

    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let out = self.frame(msg, flags);
        let seq = self.seq;
        self.sock.send(&out, 0)?;
        let mut res = vec![];
        loop {
            let len = self.sock.recv(&mut &mut self.buf[..], 0)?;
            let mut off = 0;
            while off < len {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..len])
                    .map_err(|e| io::Error::other(format!("netlink: {e}")))?;
                let l = msg.header.length as usize;
                if msg.header.sequence_number == seq {
                    match msg.payload {
                        NetlinkPayload::Done(_) => return Ok(res),
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                Some(_) => Err(e.to_io()),
                                None => Ok(res),
                            }
                        }
                        NetlinkPayload::InnerMessage(m) => {
                            res.push(m);
                            if flags & NLM_F_DUMP == 0 {
                                return Ok(res);
                            }
                        }
                        _ => {}
                    }
                }
                if l == 0 {
                    break;
                }
                off += nl_align(l);
            }
        }
    }
}

fn nl_align(l: usize) -> usize {
    (l + 3) & !3
}
