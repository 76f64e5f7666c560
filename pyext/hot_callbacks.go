package main

/*
#include "hot.h"
*/
import "C"

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"grpcgo/core"
)

// Callbacks into Python: Go never calls Python from its own goroutines.
// Instead a request is queued for the grpcgo-callbacks thread (hot_events.go),
// which runs the Python callable it names (by the id Python registered it
// under) and answers through hotCallbackReply. So every callback runs on an
// ordinary Python thread, with no thread state made up on the fly.

const (
	callbackMetadata = 0 // an AuthMetadataPlugin: (id, service_url, method_name)
	callbackCerts    = 1 // a certificate configuration fetcher: (id)
)

type callbackRequest struct {
	kind       int
	target     int64
	serviceURL string
	method     string
	reply      chan callbackReply // buffered: the first answer wins
	abandoned  atomic.Bool        // the asker gave up: Python need not run it
}

type callbackReply struct {
	md   metadata.MD
	cert *core.CertConfig
	err  error
}

// certFetchTimeout bounds how long a TLS handshake waits for Python's
// certificate fetcher before keeping the current certificates.
const certFetchTimeout = 10 * time.Second

// ask hands req to Python and waits for the answer or for ctx.
func ask(ctx context.Context, req *callbackRequest) callbackReply {
	req.reply = make(chan callbackReply, 1)
	if ctx.Err() != nil {
		return callbackReply{err: ctx.Err()}
	}
	postRequest(req)
	select {
	case r := <-req.reply:
		return r
	case <-ctx.Done():
		req.abandoned.Store(true)
		return callbackReply{err: ctx.Err()}
	}
}

func pluginFetcher(id int64) core.MetadataFetcher {
	return func(ctx context.Context, serviceURL, method string) (metadata.MD, error) {
		r := ask(ctx, &callbackRequest{kind: callbackMetadata, target: id, serviceURL: serviceURL, method: method})
		return r.md, r.err
	}
}

func certFetcher(id int64) func() (*core.CertConfig, error) {
	return func() (*core.CertConfig, error) {
		ctx, cancel := context.WithTimeout(context.Background(), certFetchTimeout)
		defer cancel()
		r := ask(ctx, &callbackRequest{kind: callbackCerts, target: id})
		return r.cert, r.err
	}
}

// requestTuple is a request as grpcgo-callbacks takes it: (request, kind, id,
// service_url, method_name).
func requestTuple(req *callbackRequest) pyObj {
	t := C.hot_tuple(5)
	C.hot_tuple_set(t, 0, capsule(req, C.HOT_CALLBACK))
	C.hot_tuple_set(t, 1, C.hot_int(C.longlong(req.kind)))
	C.hot_tuple_set(t, 2, C.hot_int(C.longlong(req.target)))
	C.hot_tuple_set(t, 3, pyStr(req.serviceURL))
	C.hot_tuple_set(t, 4, pyStr(req.method))
	return C.hot_complete(t)
}

// hotCallbackReply answers a request: metadata for a plugin, a certificate
// configuration (or None) for a fetcher, or an error message. Later answers
// to the same request are ignored.
//
//export hotCallbackReply
func hotCallbackReply(h C.uintptr_t, md, errText, cert pyObj) (ret pyObj) {
	defer guard(&ret)
	req := value[*callbackRequest](h)
	var reply callbackReply
	if C.hot_is_none(errText) == 0 {
		text, ok := strArg(errText)
		if !ok {
			return nil
		}
		reply.err = errors.New(text)
	} else {
		var ok bool
		m, r := mdFromPy(md)
		switch r {
		case mdRaised:
			return nil
		case mdInvalid:
			reply.err = status.Error(codes.Unavailable, "Illegal metadata") // grpcio's words
		}
		reply.md = m
		if reply.cert, ok = optCreds[*core.CertConfig](cert, "a certificate configuration"); !ok {
			return nil
		}
	}
	select {
	case req.reply <- reply:
	default:
	}
	return C.hot_none()
}
