package yztc.peer;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;

import org.apache.commons.codec.binary.Hex;

import com.zx.sms.codec.cmpp.msg.CmppDeliverRequestMessage;
import com.zx.sms.codec.cmpp.msg.CmppDeliverResponseMessage;
import com.zx.sms.codec.cmpp.msg.CmppReportRequestMessage;
import com.zx.sms.codec.cmpp.msg.CmppSubmitRequestMessage;
import com.zx.sms.codec.cmpp.msg.CmppSubmitResponseMessage;
import com.zx.sms.common.GlobalConstance;
import com.zx.sms.common.util.DefaultMsgIdUtil;
import com.zx.sms.common.util.MsgId;
import com.zx.sms.connect.manager.EndpointEntity.SupportLongMessage;
import com.zx.sms.connect.manager.EndpointManager;
import com.zx.sms.connect.manager.cmpp.CMPPClientEndpointEntity;
import com.zx.sms.connect.manager.cmpp.CMPPServerChildEndpointEntity;
import com.zx.sms.connect.manager.cmpp.CMPPServerEndpointEntity;
import com.zx.sms.handler.api.AbstractBusinessHandler;
import com.zx.sms.handler.api.BusinessHandlerInterface;
import com.zx.sms.session.cmpp.SessionState;

import io.netty.channel.ChannelHandlerContext;

/**
 * SMSGate's sms-core as a CMPP 3.0 peer for yztc's tests, printing one JSON
 * object per line on stdout (what it decoded, with sms-core's own code).
 *
 * <pre>
 * server PORT SP_ID SECRET
 *     An ISMG on 127.0.0.1:PORT accepting SP_ID with SECRET (CMPP 3.0). Every
 *     CMPP_SUBMIT part is answered (Result 0, sms-core's Msg_Id) and, with
 *     Registered_Delivery 1, followed by a DELIVRD status report.
 *     Events: listening, connected, submit (one per part), message (the parts
 *     joined by sms-core), report_acked.
 * client HOST PORT SP_ID SECRET DEST SRC_ID TEXT
 *     An SP: connects, submits TEXT to DEST (sms-core splits it), answers
 *     the reports. Events: connected, submit_resp, report.
 * </pre>
 * Runs until killed. Msg_Ids are printed as the 16 hex digits of their 8 octets.
 */
public final class CmppPeer {
    private CmppPeer() {
    }

    static synchronized void emit(String... keyValues) {
        StringBuilder out = new StringBuilder("{");
        for (int i = 0; i < keyValues.length; i += 2) {
            if (i > 0) {
                out.append(',');
            }
            out.append(quote(keyValues[i])).append(':');
            String value = keyValues[i + 1];
            out.append(value.startsWith("#") ? value.substring(1) : quote(value));
        }
        System.out.println(out.append('}'));
        System.out.flush();
    }

    static String num(long value) {
        return "#" + value;
    }

    static String quote(String s) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }

    static String hex(MsgId id) {
        return Hex.encodeHexString(DefaultMsgIdUtil.msgId2Bytes(id));
    }

    public static void main(String[] args) throws Exception {
        if (args.length == 4 && args[0].equals("server")) {
            server(Integer.parseInt(args[1]), args[2], args[3]);
        } else if (args.length == 8 && args[0].equals("client")) {
            client(args[1], Integer.parseInt(args[2]), args[3], args[4], args[5], args[6], args[7]);
        } else {
            System.err.println("usage: server PORT SP_ID SECRET | client HOST PORT SP_ID SECRET DEST SRC_ID TEXT");
            System.exit(2);
        }
        new CountDownLatch(1).await();
    }

    // -- the ISMG ---------------------------------------------------------------------

    static void server(int port, String spId, String secret) throws Exception {
        CMPPServerEndpointEntity server = new CMPPServerEndpointEntity();
        server.setId("ismg");
        server.setHost("127.0.0.1");
        server.setPort(port);
        server.setValid(true);
        server.setUseSSL(false);

        CMPPServerChildEndpointEntity child = new CMPPServerChildEndpointEntity();
        child.setId("sp");
        child.setChartset(StandardCharsets.UTF_8);
        child.setGroupName("yztc");
        child.setUserName(spId);
        child.setPassword(secret);
        child.setValid(true);
        child.setVersion((short) 0x30);
        child.setMaxChannels((short) 4);
        child.setRetryWaitTimeSec((short) 30);
        child.setMaxRetryCnt((short) 3);
        child.setReSendFailMsg(false);
        child.setSupportLongmsg(SupportLongMessage.BOTH);
        List<BusinessHandlerInterface> handlers = new ArrayList<>();
        handlers.add(new IsmgJoinedMessages());
        child.setBusinessHandlerSet(handlers);
        server.addchild(child);
        EndpointManager.INS.openEndpoint(server);
        emit("event", "listening", "port", num(port));
    }

    /** Sees joined messages (after sms-core's long-message handler); puts the per-part answerer in front of it. */
    static final class IsmgJoinedMessages extends AbstractBusinessHandler {
        @Override
        public String name() {
            return "IsmgJoinedMessages";
        }

        @Override
        public void handlerAdded(ChannelHandlerContext ctx) throws Exception {
            // Parts are answered as they come, before sms-core joins them.
            if (ctx.pipeline().get("IsmgParts") == null) {
                ctx.pipeline().addAfter(GlobalConstance.sessionStateManager, "IsmgParts", new IsmgParts());
            }
        }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
            if (evt == SessionState.Connect) {
                emit("event", "connected");
            }
            ctx.fireUserEventTriggered(evt);
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) throws Exception {
            if (msg instanceof CmppSubmitRequestMessage e) {
                int parts = 1 + (e.getFragments() == null ? 0 : e.getFragments().size());
                emit("event", "message", "dest", e.getDestterminalId()[0], "src_id", e.getSrcId(),
                        "text", e.getMsgContent(), "parts", num(parts));
            } else if (msg instanceof CmppDeliverResponseMessage r) {
                emit("event", "report_acked", "msg_id", hex(r.getMsgId()), "result", num(r.getResult()));
            }
            ctx.fireChannelRead(msg);
        }
    }

    static final class IsmgParts extends io.netty.channel.ChannelInboundHandlerAdapter {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) throws Exception {
            if (msg instanceof CmppSubmitRequestMessage e) {
                CmppSubmitResponseMessage resp = new CmppSubmitResponseMessage(e.getHeader().getSequenceId());
                resp.setResult(0);
                emit("event", "submit", "msg_id", hex(resp.getMsgId()), "pk_total", num(e.getPktotal()),
                        "pk_number", num(e.getPknumber()), "tp_udhi", num(e.getTpudhi()),
                        "msg_fmt", num(e.getMsgfmt().getValue()), "registered_delivery", num(e.getRegisteredDelivery()),
                        "src_id", e.getSrcId(), "msg_src", e.getMsgsrc(), "service_id", e.getServiceId(),
                        "dest", e.getDestterminalId()[0]);
                ctx.channel().writeAndFlush(resp);
                if (e.getRegisteredDelivery() == 1) {
                    CmppDeliverRequestMessage deliver = new CmppDeliverRequestMessage();
                    deliver.setDestId(e.getSrcId());
                    deliver.setSrcterminalId(e.getDestterminalId()[0]);
                    CmppReportRequestMessage report = new CmppReportRequestMessage();
                    report.setDestterminalId(e.getDestterminalId()[0]);
                    report.setMsgId(resp.getMsgId());
                    String t = new java.text.SimpleDateFormat("yyMMddHHmm").format(new java.util.Date());
                    report.setSubmitTime(t);
                    report.setDoneTime(t);
                    report.setStat("DELIVRD");
                    report.setSmscSequence(0);
                    deliver.setReportRequestMessage(report);
                    ctx.channel().writeAndFlush(deliver);
                }
            }
            ctx.fireChannelRead(msg);
        }
    }

    // -- the SP -----------------------------------------------------------------------

    static void client(String host, int port, String spId, String secret, String dest, String srcId, String text) {
        CMPPClientEndpointEntity client = new CMPPClientEndpointEntity();
        client.setId("sp");
        client.setHost(host);
        client.setPort(port);
        client.setChartset(StandardCharsets.UTF_8);
        client.setGroupName("yztc");
        client.setUserName(spId);
        client.setPassword(secret);
        client.setValid(true);
        client.setMaxChannels((short) 1);
        client.setVersion((short) 0x30);
        client.setRetryWaitTimeSec((short) 30);
        client.setMaxRetryCnt((short) 1);
        client.setCloseWhenRetryFailed(false);
        client.setUseSSL(false);
        client.setWindow(16);
        client.setReSendFailMsg(false);
        client.setSupportLongmsg(SupportLongMessage.BOTH);
        List<BusinessHandlerInterface> handlers = new ArrayList<>();
        handlers.add(new Sp(dest, srcId, spId, text));
        client.setBusinessHandlerSet(handlers);
        EndpointManager.INS.openEndpoint(client);
    }

    static final class Sp extends AbstractBusinessHandler {
        private final String dest;
        private final String srcId;
        private final String spId;
        private final String text;

        Sp(String dest, String srcId, String spId, String text) {
            this.dest = dest;
            this.srcId = srcId;
            this.spId = spId;
            this.text = text;
        }

        @Override
        public String name() {
            return "Sp";
        }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
            if (evt == SessionState.Connect) {
                emit("event", "connected");
                CmppSubmitRequestMessage msg = new CmppSubmitRequestMessage();
                msg.setDestterminalId(dest);
                msg.setSrcId(srcId);
                msg.setMsgsrc(spId);
                msg.setServiceId("YZTC");
                msg.setRegisteredDelivery((short) 1);
                msg.setMsgContent(text);
                ctx.channel().writeAndFlush(msg);
            }
            ctx.fireUserEventTriggered(evt);
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) throws Exception {
            if (msg instanceof CmppSubmitResponseMessage r) {
                emit("event", "submit_resp", "msg_id", hex(r.getMsgId()), "result", num(r.getResult()));
            } else if (msg instanceof CmppDeliverRequestMessage d) {
                List<CmppDeliverRequestMessage> all = new ArrayList<>();
                all.add(d);
                if (d.getFragments() != null) {
                    all.addAll(d.getFragments());
                }
                for (CmppDeliverRequestMessage one : all) {
                    if (one.isReport()) {
                        CmppReportRequestMessage report = one.getReportRequestMessage();
                        emit("event", "report", "msg_id", hex(report.getMsgId()), "stat", report.getStat(),
                                "dest", report.getDestterminalId());
                    }
                    CmppDeliverResponseMessage resp = new CmppDeliverResponseMessage(one.getHeader().getSequenceId());
                    resp.setResult(0);
                    resp.setMsgId(one.getMsgId());
                    ctx.channel().writeAndFlush(resp);
                }
            }
            ctx.fireChannelRead(msg);
        }
    }
}
