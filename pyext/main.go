// Command pyext is grpcgo's CPython extension: one c-shared library that
// holds the hand-written hot module (hotmodule.c, hot_*.go) and the
// gopy-generated cold module.
package main
