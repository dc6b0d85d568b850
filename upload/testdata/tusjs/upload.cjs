// Drives tus-js-client (node) against an edge node for upload/tusjs_test.go.
// Environment: ENDPOINT (creation URL), UPLOAD_URL (resume this upload
// instead of creating one), FILE, TOKEN, SHA256 (sent as metadata),
// PARALLEL (parallelUploads, concatenation), CHUNK (chunkSize in bytes;
// default: the whole rest of the file in one PATCH).
// Prints "url <upload URL>", "progress <sent> <total>" and "done" lines.
'use strict'
const fs = require('fs')
const path = require('path')
const tus = require('tus-js-client')

const file = process.env.FILE
const opts = {
  endpoint: process.env.ENDPOINT,
  uploadUrl: process.env.UPLOAD_URL || null,
  headers: { Authorization: 'Bearer ' + process.env.TOKEN },
  metadata: { filename: path.basename(file), sha256: process.env.SHA256 || '' },
  retryDelays: [0, 250, 500, 1000, 2000, 4000, 8000],
  removeFingerprintOnSuccess: true,
  storeFingerprintForResuming: false,
  onUploadUrlAvailable: () => console.log('url ' + upload.url),
  onProgress: (sent, total) => console.log('progress ' + sent + ' ' + total),
  onError: (err) => { console.error('error ' + err); process.exit(2) },
  onSuccess: () => { console.log('done'); process.exit(0) },
}
if (process.env.PARALLEL) opts.parallelUploads = Number(process.env.PARALLEL)
if (process.env.CHUNK) opts.chunkSize = Number(process.env.CHUNK)
const upload = new tus.Upload(fs.createReadStream(file), opts)
upload.start()
