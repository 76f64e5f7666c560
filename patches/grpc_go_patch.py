"""grpcgo's change to grpc-go, made at build time from the pinned version.

grpc-go keeps metadata in a map (metadata.MD), so the order of pairs across
keys is lost where its transport writes and reads header blocks, and per-RPC
credentials give one value per key. grpcio keeps both. Its server also
refuses method paths without a leading '/', which grpcio serves. This module prepares
a build of the PINNED grpc-go version (GRPC_GO_VERSION, the one go.mod
requires) that keeps them, without forking grpc-go or touching go.mod:

* it asks the go command for grpc-go's module directory (`go mod download`
  fetches it from the module proxy on a fresh machine) and copies it to
  OUT_DIR/grpc,
* applies EDITS there (each an exact, unique snippet of that version's
  source; any mismatch stops the build with a message) and adds NEW_FILES
  (grpcgo's own code, patches/grpc-go/*.go.in),
* copies golang.org/x/net (XNET_VERSION) to OUT_DIR/xnet the same way and
  applies XNET_EDITS there (one change to its HTTP/2 framer),
* writes OUT_DIR/go.mod (ours plus `replace google.golang.org/grpc =>
  OUT_DIR/grpc` and `replace golang.org/x/net => OUT_DIR/xnet`) and
  OUT_DIR/go.sum (ours),

and returns the go flags that build with it: `-modfile=OUT_DIR/go.mod
-tags=grpcgo_patched` (the tag tells grpcgo/core the change is there). A
build without them (the grpc-go test peers in tests/gopeer, say) gets
grpc-go as published. setup.py and the Makefile call it;
`python patches/grpc_go_patch.py OUT_DIR` prints the flags. Why, and what
else was weighed: docs/ARCHITECTURE.md, "Metadata order".
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

GRPC_GO = "google.golang.org/grpc"
GRPC_GO_VERSION = "v1.85.0"

HERE = os.path.dirname(os.path.abspath(__file__))

_RECORD = (
    "\t\t\tmdata[hf.Name] = append(mdata[hf.Name], v)\n",
    "\t\t\tmdata[hf.Name] = append(mdata[hf.Name], v)\n"
    "\t\t\tgrpcgoRecord(mdata, hf.Name)\n",
)
_NOTE_SIZE = (
    "\tfor _, hf := range frame.Fields {\n",
    "\tgrpcgoNoteSize(mdata, frame.Fields)\n"
    "\tfor _, hf := range frame.Fields {\n",
)

# (file in the grpc-go module, [(old, new), ...]); each old occurs once.
EDITS = [
    ("internal/transport/http2_client.go", [
        # Received header blocks: the keys' order and the block's size.
        _RECORD,
        _NOTE_SIZE,
        # Sent headers: the caller's metadata in its order, then the call
        # credentials' (grpcio's order), every value of a key.
        ("\tfor k, v := range authData {\n"
         "\t\theaderFields = append(headerFields, hpack.HeaderField{Name: k, Value: encodeMetadataHeader(k, v)})\n"
         "\t}\n"
         "\tfor k, v := range callAuthData {\n"
         "\t\theaderFields = append(headerFields, hpack.HeaderField{Name: k, Value: encodeMetadataHeader(k, v)})\n"
         "\t}\n"
         "\n"
         "\tif mdOK {\n"
         "\t\tvar k string\n"
         "\t\tfor k, vv := range md {\n"
         "\t\t\t// HTTP doesn't allow you to set pseudoheaders after non pseudoheaders were set.\n"
         "\t\t\tif isReservedHeader(k) {\n"
         "\t\t\t\tcontinue\n"
         "\t\t\t}\n"
         "\t\t\tfor _, v := range vv {\n"
         "\t\t\t\theaderFields = append(headerFields, hpack.HeaderField{Name: k, Value: encodeMetadataHeader(k, v)})\n"
         "\t\t\t}\n"
         "\t\t}\n",
         "\tif mdOK {\n"
         "\t\tvar k string\n"
         "\t\theaderFields = grpcgoAppendMD(headerFields, md)\n"),
        ("\tfor k, vv := range t.md {\n"
         "\t\tif isReservedHeader(k) {\n",
         "\theaderFields = grpcgoAppendAuth(headerFields, authData)\n"
         "\theaderFields = grpcgoAppendAuth(headerFields, callAuthData)\n"
         "\tfor k, vv := range t.md {\n"
         "\t\tif isReservedHeader(k) {\n"),
        # A response's content-type and grpc-accept-encoding are not kept
        # as metadata: nothing of grpcgo's reads them (Python never sees
        # either, as in grpcio), and they were a response's only
        # headers, so its MD stays empty: -3 allocations, -0.38 KB per
        # call (the map's group and two value slices).
        ("\t\t\tcontentTypeErr = \"\"\n"
         "\t\t\tmdata[hf.Name] = append(mdata[hf.Name], hf.Value)\n",
         "\t\t\tcontentTypeErr = \"\"\n"),
        ("\t\tcase \":status\":\n"
         "\t\t\thttpStatus = hf.Value\n",
         "\t\tcase \":status\":\n"
         "\t\t\thttpStatus = hf.Value\n"
         "\t\tcase \"grpc-accept-encoding\": // grpcgo: not kept (see above)\n"),
        # A stream's context holds its connection's one Peer, not a new
        # copy per stream (transport_alloc_grpcgo.go.in).
        ("\tctx = peer.NewContext(ctx, t.Peer())\n",
         "\tctx = peer.NewContext(ctx, t.grpcgoPeer())\n"),
        # A trailer block's OK status is one shared status
        # (transport_alloc_grpcgo.go.in).
        ("\tstatus := istatus.NewWithProto(grpcStatusCode, grpcMessage, mdata[grpcStatusDetailsBinHeader])\n",
         "\tstatus := grpcgoNewStatus(grpcStatusCode, grpcMessage, mdata[grpcStatusDetailsBinHeader])\n"),
    ]),
    ("internal/transport/http2_server.go", [
        _RECORD,
        _NOTE_SIZE,
        # Response headers name the compressions accepted, as grpcio's do.
        ("\t\theaderFields = append(headerFields, hpack.HeaderField{Name: \"grpc-encoding\", Value: s.sendCompress})\n"
         "\t}\n"
         "\theaderFields = appendHeaderFieldsFromMD(headerFields, s.header)\n",
         "\t\theaderFields = append(headerFields, hpack.HeaderField{Name: \"grpc-encoding\", Value: s.sendCompress})\n"
         "\t}\n"
         "\theaderFields = append(headerFields, hpack.HeaderField{Name: \"grpc-accept-encoding\", Value: grpcgoAcceptEncoding()})\n"
         "\theaderFields = appendHeaderFieldsFromMD(headerFields, s.header)\n"),
        # grpcio's server shows a request's connection and host headers to
        # the handler as metadata; gRFC A41 has grpc-go refuse the first
        # and drop the second when :authority is there.
        ("\t\t// \"Transports must consider requests containing the Connection header\n"
         "\t\t// as malformed.\" - A41\n"
         "\t\tcase \"connection\":\n"
         "\t\t\tif t.logger.V(logLevel) {\n"
         "\t\t\t\tt.logger.Infof(\"Received a HEADERS frame with a :connection header which makes the request malformed, as per the HTTP/2 spec\")\n"
         "\t\t\t}\n"
         "\t\t\tprotocolError = true\n",
         "\t\t// grpcgo: a connection header is metadata, as in grpcio (A41 would\n"
         "\t\t// refuse the request).\n"),
        # Response headers: room for the four fields every grpcgo response
        # has (grpc-accept-encoding is the patch's) and the metadata at
        # once: the slice grew from 2 to 4 on every call.
        ("\theaderFields := make([]hpack.HeaderField, 0, 2) // at least :status, content-type will be there if none else.\n",
         "\theaderFields := make([]hpack.HeaderField, 0, 4+len(s.header))\n"),
        ("\t} else {\n"
         "\t\t// \"If :authority is present, Host must be discarded\" - A41\n"
         "\t\tdelete(mdata, \"host\")\n"
         "\t}\n",
         "\t} // grpcgo: else host stays metadata, as in grpcio (A41 would drop it).\n"),
        ("func appendHeaderFieldsFromMD(headerFields []hpack.HeaderField, md metadata.MD) []hpack.HeaderField {\n",
         "func appendHeaderFieldsFromMD(headerFields []hpack.HeaderField, md metadata.MD) []hpack.HeaderField {\n"
         "\treturn grpcgoAppendMD(headerFields, md)\n"
         "}\n"
         "\n"
         "func appendHeaderFieldsFromMDInMapOrder(headerFields []hpack.HeaderField, md metadata.MD) []hpack.HeaderField {\n"),
    ]),
    # A method path without a leading '/', or without a service part, goes
    # to the unknown-service handler (grpcgo's, which serves every method)
    # with the path as sent, as grpcio hands it to generic handlers; grpc-go
    # answers "malformed method name".
    ("server.go", [
        ("\tsm, found := strings.CutPrefix(stream.Method(), \"/\")\n"
         "\tif !found {\n"
         "\t\ts.handleMalformedMethodName(stream, ti)\n"
         "\t\treturn\n"
         "\t}\n"
         "\tpos := strings.LastIndex(sm, \"/\")\n"
         "\tif pos == -1 {\n"
         "\t\ts.handleMalformedMethodName(stream, ti)\n"
         "\t\treturn\n"
         "\t}\n"
         "\tservice := sm[:pos]\n"
         "\tmethod := sm[pos+1:]\n",
         "\tsm := strings.TrimPrefix(stream.Method(), \"/\")\n"
         "\tservice, method := \"\", sm\n"
         "\tif pos := strings.LastIndex(sm, \"/\"); pos >= 0 {\n"
         "\t\tservice, method = sm[:pos], sm[pos+1:]\n"
         "\t}\n"),
    ]),
    ("stream.go", [
        # A server message may be sent uncompressed in a compressed call
        # (grpcio's context.disable_next_message_compression()).
        ("\thdr, data, payload, pf, err := prepareMsg(m, ss.codec, ss.compressorV0, ss.compressorV1, ss.p.bufferPool)\n",
         "\tcpV0, cpV1 := ss.compressorV0, ss.compressorV1\n"
         "\tif grpcgoUncompressed(m) {\n"
         "\t\tcpV0, cpV1 = nil, nil\n"
         "\t}\n"
         "\thdr, data, payload, pf, err := prepareMsg(m, ss.codec, cpV0, cpV1, ss.p.bufferPool)\n"),
        # A client attempt's end copies the trailers only for a balancer's
        # Done or a stats handler, its only readers (an allocation per
        # call otherwise).
        ("\t\ttr = a.transportStream.Trailer()\n",
         "\t\tif a.pickResult.Done != nil || a.statsHandler != nil {\n"
         "\t\t\ttr = a.transportStream.Trailer()\n"
         "\t\t}\n"),
    ]),
]

# grpcgo's shared write buffers (transport_writebuf_grpcgo.go.in): buffers
# mapped outside Go's heap and kept, instead of grpc-go's sync.Pool.
EDITS.append(("internal/transport/http_util.go", [
    ("\tpool      *imem.SimpleBufferPool\n\tbufHandle *[]byte\n",
     "\tpool      grpcgoWritePool\n\tbufHandle *[]byte\n"),
    ("func newBufWriter(conn io.Writer, batchSize int, pool *imem.SimpleBufferPool) *bufWriter {",
     "func newBufWriter(conn io.Writer, batchSize int, pool grpcgoWritePool) *bufWriter {"),
    ("\tvar writePool *imem.SimpleBufferPool\n\tif sharedWriteBuffer {\n"
     "\t\twritePool = ioBufferPool(writeBufferSize)\n\t}\n",
     "\tvar writePool grpcgoWritePool\n\tif sharedWriteBuffer {\n"
     "\t\twritePool = grpcgoSharedWritePool(writeBufferSize)\n\t}\n"),
    # Vectored writes (transport_writev_grpcgo.go.in): the queue of pieces,
    # written by the flush.
    ("\tconn      io.Writer\n\terr       error\n}\n",
     "\tconn      io.Writer\n\terr       error\n\tgv        grpcgoVec\n}\n"),
    ("\tif w.offset == 0 {\n\t\treturn nil\n\t}\n\tbuf := *w.bufHandle\n"
     "\t_, w.err = w.conn.Write(buf[:w.offset])\n",
     "\tif w.offset == 0 && len(w.gv.vec) == 0 {\n\t\treturn nil\n\t}\n"
     "\tw.err = w.grpcgoWrite()\n"),
]))
# Data frames written straight from the message's buffers
# (transport_writev_grpcgo.go.in).
EDITS.append(("internal/transport/controlbuf.go", [
    ("\terr := l.framer.writeData(dataItem.streamID, endStream, l.writeBuf)\n",
     "\terr := l.framer.grpcgoWriteData(dataItem.streamID, endStream, l.writeBuf, reader, dSize)\n"),
    ("\t\t\t\tif l.framer.writer.offset < minBatchSize {\n",
     "\t\t\t\tif l.framer.writer.grpcgoPending() < minBatchSize {\n"),
    # Larger DATA frames where the peer accepts them.
    ("\toiws      uint32 // outbound initial window size.\n",
     "\toiws      uint32 // outbound initial window size.\n"
     "\tgrpcgoPeerFrameLen uint32 // the peer's SETTINGS_MAX_FRAME_SIZE\n"),
    ("\t\tcase http2.SettingHeaderTableSize:\n\t\t\tupdateHeaderTblSize(l.hEnc, s.Val)\n",
     "\t\tcase http2.SettingHeaderTableSize:\n\t\t\tupdateHeaderTblSize(l.hEnc, s.Val)\n"
     "\t\tcase http2.SettingMaxFrameSize:\n\t\t\tl.grpcgoPeerFrameLen = s.Val\n"),
    ("\tmaxSize := http2MaxFrameLen\n",
     "\tmaxSize := l.grpcgoFrameLen()\n"),
]))
EDITS.append(("internal/transport/http_util.go", [
    ("\tf.fr.SetMaxReadFrameSize(http2MaxFrameLen)\n",
     "\tf.fr.SetMaxReadFrameSize(grpcgoReadFrameLen)\n"),
]))
EDITS.append(("internal/transport/http2_server.go", [
    ("\t\tID:  http2.SettingMaxFrameSize,\n\t\tVal: http2MaxFrameLen,\n",
     "\t\tID:  http2.SettingMaxFrameSize,\n\t\tVal: grpcgoReadFrameLen,\n"),
]))
EDITS.append(("internal/transport/http2_client.go", [
    ("\tvar ss []http2.Setting\n\n\tif t.initialWindowSize != defaultWindowSize {\n",
     "\tss := []http2.Setting{{ID: http2.SettingMaxFrameSize, Val: grpcgoReadFrameLen}}\n"
     "\tif t.initialWindowSize != defaultWindowSize {\n"),
]))

# One wake-up per received message (transport_recvgate_grpcgo.go.in).
EDITS.append(("internal/transport/transport.go", [
    ("\terr              error\n\tbufPool          mem.BufferPool\n}\n",
     "\terr              error\n\tbufPool          mem.BufferPool\n"
     "\tgrpcgoWant       int // bytes a blocked reader waits for (0: any)\n"
     "\tgrpcgoPending    int // data bytes in backlog\n}\n"),
    ("\tif len(b.backlog) == 0 {\n\t\tselect {\n\t\tcase b.c <- r:\n\t\t\treturn\n"
     "\t\tdefault:\n\t\t}\n\t}\n\tb.backlog = append(b.backlog, r)\n\tb.compactBacklogLocked(r)\n}\n",
     "\tif len(b.backlog) == 0 && !b.grpcgoHold(r) {\n\t\tselect {\n\t\tcase b.c <- r:\n"
     "\t\t\tb.grpcgoWant = 0\n\t\t\treturn\n"
     "\t\tdefault:\n\t\t}\n\t}\n\tb.backlog = append(b.backlog, r)\n\tb.compactBacklogLocked(r)\n"
     "\tb.grpcgoAdded(r)\n}\n"),
    ("func (b *recvBuffer) load() {\n\tb.mu.Lock()\n",
     "func (b *recvBuffer) load() {\n\tb.mu.Lock()\n\tb.grpcgoWant = 0\n"),
    ("\t\tcase b.c <- b.backlog[0]:\n\t\t\t// backlog[0] is only part",
     "\t\tcase b.c <- b.backlog[0]:\n\t\t\tb.grpcgoTaken(b.backlog[0])\n\t\t\t// backlog[0] is only part"),
    ("\tif r.clientStream != nil {\n\t\tbuf, r.err = r.readClient(n)\n",
     "\tr.recv.grpcgoWait(n)\n\tif r.clientStream != nil {\n\t\tbuf, r.err = r.readClient(n)\n"),
]))

# Server handlers run on the connection's reader, told when the request is
# in (transport_reader_grpcgo.go.in, grpc_reader_grpcgo.go.in).
EDITS.append(("internal/transport/server_stream.go", [
    ("\theaderWireLength int\n}\n",
     "\theaderWireLength int\n"
     "\tgrpcgoOnReader   bool         // its handler runs on the reader (GrpcgoRunOnReader)\n"
     "\tgrpcgoAwait      *grpcgoAwait // the first request awaited (reader goroutine only)\n}\n"),
]))
EDITS.append(("internal/transport/http2_server.go", [
    ("\t\tif dataLen > 0 {\n\t\t\tf.data.Ref()\n\t\t\ts.write(recvMsg{buffer: f.data})\n\t\t}\n\t}\n"
     "\tif f.StreamEnded() {\n\t\t// Received the end of stream from the client.\n"
     "\t\ts.compareAndSwapState(streamActive, streamReadDone)\n\t\ts.write(recvMsg{err: io.EOF})\n\t}\n",
     "\t\tif dataLen > 0 {\n\t\t\tf.data.Ref()\n"
     "\t\t\tif s.grpcgoAwait != nil {\n\t\t\t\ts.grpcgoAwait.peek(f.data.ReadOnlyData(), dataLen)\n\t\t\t}\n"
     "\t\t\ts.write(recvMsg{buffer: f.data})\n\t\t}\n\t}\n"
     "\tif f.StreamEnded() {\n\t\t// Received the end of stream from the client.\n"
     "\t\ts.compareAndSwapState(streamActive, streamReadDone)\n\t\ts.write(recvMsg{err: io.EOF})\n\t}\n"
     "\tif s.grpcgoAwait != nil {\n\t\ts.grpcgoArrived(f.StreamEnded())\n\t}\n"),
]))
EDITS.append(("server.go", [
    ("\tstreamWrapper         func(ServerStream) (ServerStream, error)\n}\n",
     "\tstreamWrapper         func(ServerStream) (ServerStream, error)\n"
     "\tgrpcgoInline          func(method, encoding string) bool // GrpcgoInlineStreams\n}\n"),
    ("\t\tif s.opts.numServerWorkers > 0 {\n\t\t\tselect {\n\t\t\tcase s.serverWorkerChannel <- f:\n",
     "\t\tif s.grpcgoOnReader(stream) {\n\t\t\tstream.GrpcgoRunOnReader(f)\n\t\t\treturn\n\t\t}\n"
     "\t\tif s.opts.numServerWorkers > 0 {\n\t\t\tselect {\n\t\t\tcase s.serverWorkerChannel <- f:\n"),
]))

# Unary calls started on the caller's thread (transport_unary_grpcgo.go.in,
# grpc_grpcgo.go.in): a client stream tells its call when it ended, and a
# start that must not wait fails where it would have waited.
EDITS.append(("internal/transport/client_stream.go", [
    ("\tstatsHandler     stats.Handler // nil for internal streams (e.g., health check, ORCA) where telemetry is not supported.\n}\n",
     "\tstatsHandler     stats.Handler // nil for internal streams (e.g., health check, ORCA) where telemetry is not supported.\n"
     "\tgrpcgoCall       *GrpcgoCall\n"
     "\tgrpcgoRecvd      int // data bytes received (reader goroutine), -1 once past grpcgoReadAt\n}\n"),
]))
EDITS.append(("internal/transport/http2_client.go", [
    ("\ts.ctx = ctx\n\ts.trReader = transportReader{\n",
     "\ts.ctx = ctx\n\ts.grpcgoCall = grpcgoCallOf(ctx)\n\ts.trReader = transportReader{\n"),
    ("\tt.controlBuf.executeAndPut(addBackStreamQuota, cleanup)\n\t// This will unblock write.\n\tclose(s.done)\n}\n",
     "\tt.controlBuf.executeAndPut(addBackStreamQuota, cleanup)\n\t// This will unblock write.\n\tclose(s.done)\n"
     "\ts.grpcgoEnded(eosReceived)\n}\n"),
    ("\t\t\tf.data.Ref()\n\t\t\ts.write(recvMsg{buffer: f.data})\n",
     "\t\t\tf.data.Ref()\n\t\t\ts.write(recvMsg{buffer: f.data})\n\t\t\ts.grpcgoReceived(dataLen)\n"),
    ("\t\tfirstTry = false\n",
     "\t\tif GrpcgoNoWait(ctx) {\n"
     "\t\t\treturn nil, &NewStreamError{Err: ErrGrpcgoWouldBlock}\n"
     "\t\t}\n"
     "\t\tfirstTry = false\n"),
]))
EDITS.append(("picker_wrapper.go", [
    ("\t\tif ch == pg.blockingCh {\n",
     "\t\tif ch == pg.blockingCh {\n"
     "\t\t\tif transport.GrpcgoNoWait(ctx) {\n"
     "\t\t\t\treturn pick{}, dropError{error: transport.ErrGrpcgoWouldBlock}\n"
     "\t\t\t}\n"),
]))
EDITS.append(("clientconn.go", [
    ("\tinternal.NewStreamWaitingForResolver()\n",
     "\tif transport.GrpcgoNoWait(ctx) {\n"
     "\t\treturn false, transport.ErrGrpcgoWouldBlock\n"
     "\t}\n"
     "\tinternal.NewStreamWaitingForResolver()\n"),
]))
EDITS.append(("stream.go", [
    ("\tif cs.finished || cs.committed || a.drop {\n",
     "\tif cs.finished || cs.committed || a.drop || transport.GrpcgoIsWouldBlock(err) {\n"),
]))

# The caller writes its own frames while the writer is idle
# (transport_inline_grpcgo.go.in).
EDITS.append(("internal/transport/controlbuf.go", [
    ("\ttrfChan                 atomic.Pointer[chan struct{}]\n}\n",
     "\ttrfChan                 atomic.Pointer[chan struct{}]\n"
     "\tgrpcgoMu                sync.Mutex // held by whoever does loopy's work\n"
     "\tgrpcgoLoopy             atomic.Pointer[loopyWriter]\n"
     "\tgrpcgoErr               atomic.Pointer[error]\n"
     "\tgrpcgoLeft              atomic.Bool // the caller left loopy something to write\n}\n"),
    ("\tif c.consumerWaiting {\n\t\twakeUp = true\n",
     "\tif c.consumerWaiting && !grpcgoQuiet(it) {\n\t\twakeUp = true\n"),
    ("func (l *loopyWriter) run() (err error) {\n",
     "func (l *loopyWriter) run() (err error) {\n"
     "\treturn l.grpcgoRun()\n}\n\n"
     "// grpc-go's own run, replaced by grpcgoRun (transport_inline_grpcgo.go.in).\n"
     "func (l *loopyWriter) grpcgoReplacedRun() (err error) {\n"),
    ("type dataFrame struct {\n\tnonTransportResponseFrame\n",
     "type dataFrame struct {\n\tnonTransportResponseFrame\n\tgrpcgoQuiet bool\n"),
    ("type clientHeaders struct {\n\tnonTransportResponseFrame\n",
     "type clientHeaders struct {\n\tnonTransportResponseFrame\n\tgrpcgoQuiet bool\n"),
    # In loopy's place, a header block too large for what is left of the
    # write buffer is queued whole, for loopy's flush (grpcgoHeaderByRef).
    ("\tvar (\n\t\terr               error\n\t\tendHeaders, first bool\n\t)\n",
     "\tif l.framer.writer.gv.inline && l.grpcgoHeaderByRef(streamID, endStream) {\n"
     "\t\treturn nil\n\t}\n"
     "\tvar (\n\t\terr               error\n\t\tendHeaders, first bool\n\t)\n"),
]))
EDITS.append(("internal/transport/http2_client.go", [
    ("\tfirstTry := true\n\tvar ch chan struct{}\n",
     "\thdr.grpcgoQuiet = s.grpcgoCall.grpcgoNote(t)\n"
     "\tfirstTry := true\n\tvar ch chan struct{}\n"),
    ("\tdf := &dataFrame{\n\t\tstreamID:  s.id,\n\t\tendStream: opts.Last,\n\t\th:         hdr,\n\t\tdata:      data,\n\t}\n",
     "\tdf := &dataFrame{\n\t\tstreamID:  s.id,\n\t\tendStream: opts.Last,\n\t\th:         hdr,\n\t\tdata:      data,\n\t}\n"
     "\tdf.grpcgoQuiet = len(hdr)+data.Len() <= grpcgoInlineMax && s.grpcgoCall.grpcgoNote(t)\n"),
]))

# Detached server calls (grpc_grpcgo.go.in): a handler that called
# GrpcgoDetach returns without ending its call; GrpcgoEnd ends it later.
EDITS.append(("stream.go", [
    ("\tserverHeaderBinlogged bool\n}\n",
     "\tserverHeaderBinlogged bool\n"
     "\tgrpcgoDetached        bool // the handler returned; GrpcgoEnd ends the call\n"
     "\tgrpcgoServer          *Server\n"
     "\tgrpcgoBegin           *stats.Begin\n"
     "\tgrpcgoCtx             context.Context // processRPC's, for the stats handlers\n"
     "}\n"),
]))
EDITS.append(("server.go", [
    ("\t\ttrInfo:                trInfo,\n\t\tstatsHandler:          sh,\n\t}\n",
     "\t\ttrInfo:                trInfo,\n\t\tstatsHandler:          sh,\n"
     "\t\tgrpcgoServer:          s,\n\t\tgrpcgoBegin:           statsBegin,\n"
     "\t\tgrpcgoCtx:             ctx,\n\t}\n"),
    ("\t\tdefer func() {\n\t\t\tif trInfo != nil {\n\t\t\t\tss.mu.Lock()\n",
     "\t\tdefer func() {\n\t\t\tif ss.grpcgoDetached {\n\t\t\t\treturn // GrpcgoEnd does this\n\t\t\t}\n"
     "\t\t\tif trInfo != nil {\n\t\t\t\tss.mu.Lock()\n"),
    ("\t\t\tappErr = s.opts.streamInt(server, wrappedStream, info, sd.Handler)\n\t\t}\n\t}\n",
     "\t\t\tappErr = s.opts.streamInt(server, wrappedStream, info, sd.Handler)\n\t\t}\n\t}\n"
     "\tif ss.grpcgoDetached {\n\t\treturn nil // GrpcgoEnd ends the call\n\t}\n"),
]))

# A data frame loopy takes for a stream it no longer knows (the stream was
# reset, and its cleanup handled, while a write of it was on its way to
# the control buffer) is dropped: grpc-go dropped it without freeing its
# data, so a lent or pooled message was never given back
# (transport_grpcgo_test.go.in; what loopy's streams hold when it ends is
# freed too: grpcgoFreeStreams, transport_inline_grpcgo.go.in).
EDITS.append(("internal/transport/controlbuf.go", [
    ("\tstr, ok := l.estdStreams[df.streamID]\n\tif !ok {\n\t\treturn\n\t}\n",
     "\tstr, ok := l.estdStreams[df.streamID]\n\tif !ok {\n"
     "\t\tdf.data.Free() // grpcgo: the reference write() took for the frame\n"
     "\t\treturn\n\t}\n"),
]))

# A request's grpc-accept-encoding and grpc-timeout as grpcio's
# (transport_grpcgo.go.in): "identity, deflate, gzip" (grpc-go: "gzip,deflate"),
# and the timeout in C core's units (grpc-go: the finest unit that holds it,
# "999020u" where grpcio sends "1S").
EDITS.append(("internal/transport/http2_client.go", [
    ("\tregisteredCompressors := t.registeredCompressors\n",
     "\tregisteredCompressors := grpcgoAcceptEncoding()\n"),
    ("Value: grpcutil.EncodeDuration(timeout)})\n",
     "Value: grpcgoEncodeTimeout(timeout)})\n"),
]))

# A server stream's last frames wake the writer once (transport_grpcgo.go.in:
# ServerStream.GrpcgoCork/GrpcgoUncork).
EDITS.append(("internal/transport/controlbuf.go", [
    ("\tconsumerWaiting bool      // True when readers are blocked waiting for new data.\n",
     "\tconsumerWaiting bool      // True when readers are blocked waiting for new data.\n"
     "\tgrpcgoCorked    int       // grpcgoCork calls not yet undone: wake-ups wait\n"
     "\tgrpcgoHeldWake  bool      // a wake-up waits for grpcgoUncork\n"),
    ("\t\t\tc.trfChan.Store(&ch)\n\t\t}\n\t}\n\tif wakeUp {\n",
     "\t\t\tc.trfChan.Store(&ch)\n\t\t}\n\t}\n"
     "\tif wakeUp && c.grpcgoCorked > 0 {\n\t\tc.grpcgoHeldWake, wakeUp = true, false\n\t}\n"
     "\tif wakeUp {\n"),
]))

# An uncompressed message does not ask the stream for its encoding: on a
# client stream that is a two-case select per message (waitOnHeader), and
# checkRecvPayload only reads the encoding of a compressed message.
EDITS.append(("rpc_util.go", [
    ("\tif st := checkRecvPayload(pf, s.RecvCompress(), compressor != nil || dc != nil, isServer); st != nil {\n",
     "\trecvCompress := \"\"\n"
     "\tif pf != compressionNone {\n"
     "\t\trecvCompress = s.RecvCompress()\n"
     "\t}\n"
     "\tif st := checkRecvPayload(pf, recvCompress, compressor != nil || dc != nil, isServer); st != nil {\n"),
]))

# No stream WINDOW_UPDATE once the peer ended its side of the stream: with
# grpcgo's 4 MiB stream windows grpc-go gave a stream's window back after
# every message of 1 MiB or more, a unary request or response is the last
# data of its side, so that frame opened a window nothing could use, and
# its arrival woke the peer's reader (a thread switch at each end, per
# call, in the middle of the call). A server stream whose client sent
# END_STREAM (grpcgoEOS, set by the reader before it hands that frame's
# data on, so whoever reads the data sees it) and a client stream that
# ended send none; the connection's window is given back as before.
EDITS.append(("internal/transport/server_stream.go", [
    ("\tgrpcgoAwait      *grpcgoAwait // the first request awaited (reader goroutine only)\n}\n",
     "\tgrpcgoAwait      *grpcgoAwait // the first request awaited (reader goroutine only)\n"
     "\tgrpcgoEOS        atomic.Bool  // the client's END_STREAM arrived (set before its data is handed on)\n}\n"),
]))
EDITS.append(("internal/transport/http2_server.go", [
    ("\tif size > 0 {\n\t\tif err := s.fc.onData(size); err != nil {\n"
     "\t\t\tt.closeStream(s, true, http2.ErrCodeFlowControl, false)\n",
     "\tif f.StreamEnded() {\n\t\ts.grpcgoEOS.Store(true)\n\t}\n"
     "\tif size > 0 {\n\t\tif err := s.fc.onData(size); err != nil {\n"
     "\t\t\tt.closeStream(s, true, http2.ErrCodeFlowControl, false)\n"),
    ("func (t *http2Server) updateWindow(s *ServerStream, n uint32) {\n\tif w := s.fc.onRead(n); w > 0 {\n",
     "func (t *http2Server) updateWindow(s *ServerStream, n uint32) {\n"
     "\tif w := s.fc.onRead(n); w > 0 && !s.grpcgoEOS.Load() {\n"),
]))
EDITS.append(("internal/transport/http2_client.go", [
    ("func (t *http2Client) updateWindow(s *ClientStream, n uint32) {\n\tif w := s.fc.onRead(n); w > 0 {\n",
     "func (t *http2Client) updateWindow(s *ClientStream, n uint32) {\n"
     "\tif w := s.fc.onRead(n); w > 0 && s.getState() != streamDone {\n"),
]))

# Large messages read straight into their destination
# (transport_dest_grpcgo.go.in, mem_grpcgo.go.in): the reader follows each
# stream's message boundaries and reads a large message's frames into one
# destination the binding may take over whole.
EDITS.append(("internal/transport/http_util.go", [
    ("\tpool      mem.BufferPool\n\terrDetail error\n}\n",
     "\tpool      mem.BufferPool\n\terrDetail error\n"
     "\tgrpcgoFind func(id uint32) *grpcgoTrack // the transport's streams\n"
     "\tgrpcgoAdv  *grpcgoTrack // to advance through the payload read as usual\n}\n"),
    ("\t// Converting a *[]byte to a mem.SliceBuffer incurs a heap allocation. This\n",
     "\tif handled, err := f.grpcgoReadData(fh); handled {\n\t\treturn err\n\t}\n"
     "\t// Converting a *[]byte to a mem.SliceBuffer incurs a heap allocation. This\n"),
    ("\tf.dataFrame.FrameHeader = fh\n",
     "\tf.grpcgoAdvance(buf)\n\tf.dataFrame.FrameHeader = fh\n"),
]))
# A DATA frame's buffer is handed on to its stream with the reader's own
# reference (grpc-go took one more and dropped the reader's after): so the
# reader holds none by the time the message can reach its reader, and the
# binding's take-over (mem.GrpcgoTakeDest) never finds it still held.
for _file in ("internal/transport/http2_client.go", "internal/transport/http2_server.go"):
    EDITS.append((_file, [
        ("\t\tcase *parsedDataFrame:\n\t\t\tt.handleData(frame)\n\t\t\tframe.data.Free()\n",
         "\t\tcase *parsedDataFrame:\n\t\t\tt.handleData(frame)\n"
         "\t\t\tif frame.data != nil {\n\t\t\t\tframe.data.Free()\n\t\t\t}\n"),
    ]))
EDITS.append(("internal/transport/http2_client.go", [
    ("\t\t\tf.data.Ref()\n\t\t\ts.write(recvMsg{buffer: f.data})\n\t\t\ts.grpcgoReceived(dataLen)\n",
     "\t\t\ts.write(recvMsg{buffer: f.data})\n"
     "\t\t\tf.data = nil // handed on with the reader's reference\n"
     "\t\t\ts.grpcgoReceived(dataLen)\n"),
]))
EDITS.append(("internal/transport/http2_server.go", [
    ("\t\t\tf.data.Ref()\n\t\t\tif s.grpcgoAwait != nil {\n"
     "\t\t\t\ts.grpcgoAwait.peek(f.data.ReadOnlyData(), dataLen)\n\t\t\t}\n"
     "\t\t\ts.write(recvMsg{buffer: f.data})\n",
     "\t\t\tif s.grpcgoAwait != nil {\n"
     "\t\t\t\ts.grpcgoAwait.peek(f.data.ReadOnlyData(), dataLen)\n\t\t\t}\n"
     "\t\t\ts.write(recvMsg{buffer: f.data})\n"
     "\t\t\tf.data = nil // handed on with the reader's reference\n"),
]))
EDITS.append(("internal/transport/transport.go", [
    ("\tfc       inFlow\n\twq       writeQuota\n}\n",
     "\tfc       inFlow\n\twq       writeQuota\n"
     "\tgrpcgoTrk grpcgoTrack // its message boundaries (the reader goroutine only)\n}\n"),
]))
EDITS.append(("internal/transport/http2_client.go", [
    ("\tt.controlBuf = newControlBuffer(t.ctxDone, clientSide)\n",
     "\tt.controlBuf = newControlBuffer(t.ctxDone, clientSide)\n"
     "\tt.framer.grpcgoFind = t.grpcgoTrackOf\n"),
]))
EDITS.append(("internal/transport/http2_server.go", [
    ("\tt.controlBuf = newControlBuffer(t.done, serverSide)\n",
     "\tt.controlBuf = newControlBuffer(t.done, serverSide)\n"
     "\tt.framer.grpcgoFind = t.grpcgoTrackOf\n"),
]))

# An event loop's thread reads the connection of its one ping-pong stream
# (transport_loopread_grpcgo.go.in): each reader loop parks while the loop
# reads, and its body is a method the loop's pump shares; a stream tells a
# direct reader what was queued for it.
EDITS.append(("internal/transport/http2_server.go", [
    ("\tlastRead        int64 // Keep this field 64-bit aligned. Accessed atomically.\n"
     "\tdone            chan struct{}\n",
     "\tlastRead        int64 // Keep this field 64-bit aligned. Accessed atomically.\n"
     "\tdone            chan struct{}\n"
     "\tgrpcgoLR        grpcgoLoopRead          // grpcgo: the loop's reading\n"
     "\tgrpcgoCtx       context.Context         // grpcgo: HandleStreams's, for the loop's reading\n"
     "\tgrpcgoHandle    func(*ServerStream)     // grpcgo: the same\n"),
    ("\t\treaderDone:        make(chan struct{}),\n",
     "\t\treaderDone:        make(chan struct{}),\n"
     "\t\tgrpcgoLR:          newGrpcgoLoopRead(),\n"),
    ("\tfor {\n"
     "\t\tt.controlBuf.throttle()\n"
     "\t\tframe, err := t.framer.readFrame()\n"
     "\t\tatomic.StoreInt64(&t.lastRead, time.Now().UnixNano())\n"
     "\t\tif err != nil {\n",
     "\tt.grpcgoServeContext(ctx, handle)\n"
     "\tfor {\n"
     "\t\tif t.grpcgoLR.wanted.Load() && !t.framer.grpcgoFrameBuffered() {\n"
     "\t\t\tt.grpcgoLR.park(t.done, t.conn)\n"
     "\t\t\tcontinue\n"
     "\t\t}\n"
     "\t\tt.controlBuf.throttle()\n"
     "\t\tframe, err := t.framer.readFrame()\n"
     "\t\tatomic.StoreInt64(&t.lastRead, time.Now().UnixNano())\n"
     "\t\tif t.grpcgoHandleFrame(ctx, frame, err, handle) {\n"
     "\t\t\treturn\n"
     "\t\t}\n"
     "\t}\n"
     "}\n"
     "\n"
     "// grpcgoHandleFrame is the body of HandleStreams's loop, which the loop's\n"
     "// pump shares (grpcgo_loopread.go): true once the transport is closed.\n"
     "func (t *http2Server) grpcgoHandleFrame(ctx context.Context, frame any, err error, handle func(*ServerStream)) bool {\n"
     "\t{\n"
     "\t\tif err != nil {\n"),
    ("\t\t\t\t}\n"
     "\t\t\t\tcontinue\n"
     "\t\t\t}\n"
     "\t\t\tt.Close(err)\n"
     "\t\t\treturn\n"
     "\t\t}\n",
     "\t\t\t\t}\n"
     "\t\t\t\treturn false\n"
     "\t\t\t}\n"
     "\t\t\tt.Close(err)\n"
     "\t\t\treturn true\n"
     "\t\t}\n"),
    ("\t\t\t\t\tcloseConn: err,\n"
     "\t\t\t\t})\n"
     "\t\t\t\tcontinue\n",
     "\t\t\t\t\tcloseConn: err,\n"
     "\t\t\t\t})\n"
     "\t\t\t\treturn false\n"),
    ("\t\t\t\tt.logger.Infof(\"Received unsupported frame type %T\", frame)\n"
     "\t\t\t}\n"
     "\t\t}\n"
     "\t}\n"
     "}\n",
     "\t\t\t\tt.logger.Infof(\"Received unsupported frame type %T\", frame)\n"
     "\t\t\t}\n"
     "\t\t}\n"
     "\t}\n"
     "\treturn false\n"
     "}\n"),
]))
EDITS.append(("internal/transport/http2_client.go", [
    ("\tlastRead  int64 // Keep this field 64-bit aligned. Accessed atomically.\n"
     "\tctx       context.Context\n",
     "\tlastRead  int64 // Keep this field 64-bit aligned. Accessed atomically.\n"
     "\tgrpcgoLR  grpcgoLoopRead // grpcgo: the loop's reading\n"
     "\tctx       context.Context\n"),
    ("\t\treaderDone:            make(chan struct{}),\n",
     "\t\treaderDone:            make(chan struct{}),\n"
     "\t\tgrpcgoLR:              newGrpcgoLoopRead(),\n"),
    ("\t// Loop to keep reading incoming messages on this transport.\n"
     "\tfor {\n",
     "\t// Loop to keep reading incoming messages on this transport.\n"
     "\tfor {\n"
     "\t\tif t.grpcgoLR.wanted.Load() && !t.framer.grpcgoFrameBuffered() {\n"
     "\t\t\tt.grpcgoLR.park(t.ctx.Done(), t.conn)\n"
     "\t\t\tcontinue\n"
     "\t\t}\n"),
    ("\t\tframe, err := t.framer.readFrame()\n"
     "\t\tif t.keepaliveEnabled {\n"
     "\t\t\tatomic.StoreInt64(&t.lastRead, time.Now().UnixNano())\n"
     "\t\t}\n"
     "\t\tif err != nil {\n",
     "\t\tframe, err := t.framer.readFrame()\n"
     "\t\tif t.keepaliveEnabled {\n"
     "\t\t\tatomic.StoreInt64(&t.lastRead, time.Now().UnixNano())\n"
     "\t\t}\n"
     "\t\tif e, stop := t.grpcgoHandleFrame(frame, err); e != nil {\n"
     "\t\t\terrClose = e\n"
     "\t\t\tif stop {\n"
     "\t\t\t\treturn\n"
     "\t\t\t}\n"
     "\t\t}\n"
     "\t}\n"
     "}\n"
     "\n"
     "// grpcgoHandleFrame is the body of reader's loop, which the loop's pump\n"
     "// shares (grpcgo_loopread.go): errClose is what to close the transport\n"
     "// with, stop whether reading ends.\n"
     "func (t *http2Client) grpcgoHandleFrame(frame any, err error) (errClose error, stop bool) {\n"
     "\t{\n"
     "\t\tif err != nil {\n"),
    ("\t\t\t\t\tt.closeStream(s, status.Error(code, msg), true, http2.ErrCodeProtocol, status.New(code, msg), nil, false)\n"
     "\t\t\t\t}\n"
     "\t\t\t\tcontinue\n",
     "\t\t\t\t\tt.closeStream(s, status.Error(code, msg), true, http2.ErrCodeProtocol, status.New(code, msg), nil, false)\n"
     "\t\t\t\t}\n"
     "\t\t\t\treturn nil, false\n"),
    ("\t\t\terrClose = connectionErrorf(true, err, \"error reading from server: %v\", err)\n"
     "\t\t\treturn\n",
     "\t\t\treturn connectionErrorf(true, err, \"error reading from server: %v\", err), true\n"),
    ("\t\t\terrClose = t.handleGoAway(frame)\n",
     "\t\t\treturn t.handleGoAway(frame), false\n"),
    ("\t\t\t\tlogger.Errorf(\"transport: http2Client.reader got unhandled frame type %v.\", frame)\n"
     "\t\t\t}\n"
     "\t\t}\n"
     "\t}\n"
     "}\n",
     "\t\t\t\tlogger.Errorf(\"transport: http2Client.reader got unhandled frame type %v.\", frame)\n"
     "\t\t\t}\n"
     "\t\t}\n"
     "\t}\n"
     "\treturn nil, false\n"
     "}\n"),
]))
EDITS.append(("internal/transport/http2_server.go", [
    ("\t\tdelete(t.activeStreams, s.id)\n"
     "\t\tif len(t.activeStreams) == 0 {\n",
     "\t\tdelete(t.activeStreams, s.id)\n"
     "\t\tif len(t.activeStreams) == 0 {\n"
     "\t\t\tt.grpcgoLR.streamsGone()\n"),
]))
EDITS.append(("internal/transport/http2_client.go", [
    ("\t\t\t\tdelete(t.activeStreams, s.id)\n"
     "\t\t\t}\n",
     "\t\t\t\tdelete(t.activeStreams, s.id)\n"
     "\t\t\t\tif len(t.activeStreams) == 0 {\n"
     "\t\t\t\t\tt.grpcgoLR.streamsGone()\n"
     "\t\t\t\t}\n"
     "\t\t\t}\n"),
]))
EDITS.append(("internal/transport/transport.go", [
    ("\tgrpcgoTrk grpcgoTrack // its message boundaries (the reader goroutine only)\n}\n",
     "\tgrpcgoTrk grpcgoTrack // its message boundaries (the reader goroutine only)\n"
     "\tgrpcgoDirect grpcgoDirect // what a direct reader needs (grpcgo_loopread.go)\n}\n"),
    ("func (s *Stream) write(m recvMsg) {\n"
     "\ts.buf.put(m)\n"
     "}\n",
     "func (s *Stream) write(m recvMsg) {\n"
     "\twhole := s.grpcgoDirect.isWhole(m)\n"
     "\ts.buf.put(m)\n"
     "\ts.grpcgoDirect.noteWrite(m, whole)\n"
     "}\n"),
    # Whoever reads a message's prefix (RecvMsg, on any goroutine) takes
    # one whole message from the count.
    ("\t\t\treturn err\n"
     "\t\t}\n"
     "\t}\n"
     "\treturn nil\n"
     "}\n"
     "\n"
     "// ceil returns the ceil",
     "\t\t\treturn err\n"
     "\t\t}\n"
     "\t}\n"
     "\ts.grpcgoDirect.took()\n"
     "\treturn nil\n"
     "}\n"
     "\n"
     "// ceil returns the ceil"),
]))

# (file added to the grpc-go module, source in patches/grpc-go/)
NEW_FILES = [
    ("internal/transport/grpcgo.go", "transport_grpcgo.go.in"),
    ("internal/transport/grpcgo_writebuf.go", "transport_writebuf_grpcgo.go.in"),
    ("internal/transport/grpcgo_writev.go", "transport_writev_grpcgo.go.in"),
    ("mem/grpcgo.go", "mem_grpcgo.go.in"),
    ("internal/transport/grpcgo_recvgate.go", "transport_recvgate_grpcgo.go.in"),
    ("grpcgo.go", "grpc_grpcgo.go.in"),
    ("grpcgo_batch.go", "grpc_batch_grpcgo.go.in"),
    ("internal/transport/grpcgo_unary.go", "transport_unary_grpcgo.go.in"),
    ("internal/transport/grpcgo_inline.go", "transport_inline_grpcgo.go.in"),
    ("internal/transport/grpcgo_reader.go", "transport_reader_grpcgo.go.in"),
    ("grpcgo_reader.go", "grpc_reader_grpcgo.go.in"),
    ("internal/transport/grpcgo_dest.go", "transport_dest_grpcgo.go.in"),
    ("metadata/grpcgo.go", "metadata_grpcgo.go.in"),
    # grpcgo's tests of what it changed inside the transport (the copy has
    # none of grpc-go's own tests; the Makefile's test-go runs these).
    ("internal/transport/grpcgo_test.go", "transport_grpcgo_test.go.in"),
    ("grpcgo_alloc.go", "grpc_alloc_grpcgo.go.in"),
    ("internal/transport/grpcgo_alloc.go", "transport_alloc_grpcgo.go.in"),
    ("internal/transport/grpcgo_loopread.go", "transport_loopread_grpcgo.go.in"),
    ("grpcgo_loopread.go", "grpc_loopread_grpcgo.go.in"),
    ("xds/grpcgo.go", "xds_grpcgo.go.in"),
]

# golang.org/x/net, whose http2 framer grpc-go reads frames with, is
# copied and edited the same way (to OUT_DIR/xnet, with a replace of its
# own): one edit, in the reader of header blocks.
XNET = "golang.org/x/net"
XNET_VERSION = "v0.61.0"
XNET_EDITS = [
    ("http2/frame.go", [
        # A header block's fields are decoded into a slice the framer keeps
        # for the next block (Frames are only valid until the next
        # ReadFrame, as x/net documents; grpc-go reads a block's fields once,
        # into its MD, before it reads on), not into a new slice grown by
        # append for every block: 3-4 allocations and ~0.3-0.6 KB fewer per
        # call at each end. A slice grown past 64 fields is not kept.
        ("\tReadMetaHeaders *hpack.Decoder\n",
         "\tReadMetaHeaders *hpack.Decoder\n"
         "\n"
         "\tgrpcgoFields []hpack.HeaderField // grpcgo: the last block's fields, reused\n"),
        ("\tmh := &MetaHeadersFrame{\n"
         "\t\tHeadersFrame: hf,\n"
         "\t}\n",
         "\tmh := fr.frameCache.grpcgoMetaFrame(hf, fr.grpcgoFields[:0])\n"),
        # The HEADERS frame and the MetaHeadersFrame made of it are reused
        # as x/net reuses a DATA frame (SetReuseFrames, which grpc-go
        # sets): one of each per framer, not per block (a frame is valid
        # until the next ReadFrame; a HEADERS frame read in the middle of
        # a block fails the block before it is used). -2 allocations and
        # ~0.15 KB per block.
        ("type frameCache struct {\n"
         "\tdataFrame DataFrame\n"
         "}\n",
         "type frameCache struct {\n"
         "\tdataFrame DataFrame\n"
         "\n"
         "\theadersFrame HeadersFrame     // grpcgo\n"
         "\tmetaFrame    MetaHeadersFrame // grpcgo\n"
         "}\n"
         "\n"
         "func (fc *frameCache) grpcgoHeadersFrame(fh FrameHeader) *HeadersFrame {\n"
         "\tif fc == nil {\n"
         "\t\treturn &HeadersFrame{FrameHeader: fh}\n"
         "\t}\n"
         "\tfc.headersFrame = HeadersFrame{FrameHeader: fh}\n"
         "\treturn &fc.headersFrame\n"
         "}\n"
         "\n"
         "func (fc *frameCache) grpcgoMetaFrame(hf *HeadersFrame, fields []hpack.HeaderField) *MetaHeadersFrame {\n"
         "\tif fc == nil {\n"
         "\t\treturn &MetaHeadersFrame{HeadersFrame: hf, Fields: fields}\n"
         "\t}\n"
         "\tfc.metaFrame = MetaHeadersFrame{HeadersFrame: hf, Fields: fields}\n"
         "\treturn &fc.metaFrame\n"
         "}\n"),
        ("func parseHeadersFrame(_ *frameCache, fh FrameHeader, countError func(string), p []byte) (_ Frame, err error) {\n"
         "\thf := &HeadersFrame{\n"
         "\t\tFrameHeader: fh,\n"
         "\t}\n",
         "func parseHeadersFrame(fc *frameCache, fh FrameHeader, countError func(string), p []byte) (_ Frame, err error) {\n"
         "\thf := fc.grpcgoHeadersFrame(fh)\n"),
        ("\t\tmh.Fields = append(mh.Fields, hf)\n",
         "\t\tmh.Fields = append(mh.Fields, hf)\n"
         "\t\tif cap(mh.Fields) <= 64 {\n"
         "\t\t\tfr.grpcgoFields = mh.Fields\n"
         "\t\t}\n"),
    ]),
]

TAG = "grpcgo_patched"


class PatchError(RuntimeError):
    pass


def _module_dir(root, go, module=GRPC_GO, version=GRPC_GO_VERSION):
    cmd = [go, "mod", "download", "-json", module]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    try:
        info = json.loads(proc.stdout)
    except ValueError:
        info = {}
    if proc.returncode != 0 or not info.get("Dir"):
        raise PatchError("`%s` failed: %s%s" % (" ".join(cmd), info.get("Error", ""), proc.stderr))
    if info.get("Version") != version:
        raise PatchError(
            "go.mod requires %s %s, but grpcgo's change (patches/grpc_go_patch.py) is "
            "written for %s: port its edits to the new version, then change "
            "its version there" % (module, info.get("Version"), version))
    return info["Dir"]


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _copy_edited(moddir, dst, edits, module, version):
    # copyfile: the module cache's files are read-only; the copies need not be.
    shutil.copytree(moddir, dst, copy_function=shutil.copyfile,
                    ignore=shutil.ignore_patterns("testdata", "*_test.go"))
    for rel, pairs in edits:
        text = _read(os.path.join(dst, rel))
        for old, new in pairs:
            if text.count(old) != 1:
                raise PatchError("%s@%s %s: expected exactly one copy of %r, found %d"
                                 % (module, version, rel, old[:80], text.count(old)))
            text = text.replace(old, new)
        _write(os.path.join(dst, rel), text)


def flags(out_dir):
    return ["-modfile=" + os.path.join(os.path.abspath(out_dir), "go.mod"), "-tags=" + TAG]


def prepare(root, out_dir, go="go"):
    """Makes OUT_DIR's patched grpc-go and modfile (if not current); returns the go flags."""
    root = os.path.abspath(root)
    out_dir = os.path.abspath(out_dir)
    moddir = _module_dir(root, go)
    xnetdir = _module_dir(root, go, XNET, XNET_VERSION)
    inputs = [os.path.abspath(__file__), os.path.join(root, "go.mod"), os.path.join(root, "go.sum")]
    inputs += [os.path.join(HERE, "grpc-go", name) for _, name in NEW_FILES]
    digest = hashlib.sha256((moddir + "\n" + xnetdir).encode())
    for path in inputs:
        digest.update(_read(path).encode())
    stamp = os.path.join(out_dir, "stamp")
    if os.path.exists(stamp) and _read(stamp) == digest.hexdigest():
        return flags(out_dir)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    src = os.path.join(out_dir, "grpc")
    xnet = os.path.join(out_dir, "xnet")
    _copy_edited(moddir, src, EDITS, GRPC_GO, GRPC_GO_VERSION)
    _copy_edited(xnetdir, xnet, XNET_EDITS, XNET, XNET_VERSION)
    for rel, name in NEW_FILES:
        _write(os.path.join(src, rel), _read(os.path.join(HERE, "grpc-go", name)))
    gomod = _read(os.path.join(root, "go.mod"))
    _write(os.path.join(out_dir, "go.mod"), gomod.rstrip("\n") + "\n\n"
           "// Written by patches/grpc_go_patch.py: grpc-go %s with grpcgo's change.\n"
           "replace %s => %s\n"
           "replace %s => %s\n" % (GRPC_GO_VERSION, GRPC_GO, src, XNET, xnet))
    shutil.copyfile(os.path.join(root, "go.sum"), os.path.join(out_dir, "go.sum"))
    _write(stamp, digest.hexdigest())
    return flags(out_dir)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: grpc_go_patch.py OUT_DIR   (prints the go flags that use it)")
    try:
        print(" ".join(prepare(os.path.dirname(HERE), sys.argv[1])))
    except PatchError as e:
        sys.exit("grpc_go_patch: %s" % e)
