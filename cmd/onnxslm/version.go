package main

// Version is onnxslm's version; it is recorded in the metadata of every model it writes.
const Version = "0.1.0-dev"
