// Drives react-uploady's own tus implementation (@rpldy/tus-sender, with
// @rpldy/uploader, no React) against an edge node for
// upload/rpldy_test.go: a tus client written apart from tus-js-client.
// Environment: ENDPOINT (creation URL), FILE, TOKEN (empty: none; the
// endpoint may be a signed URL), SHA256 (metadata), CHUNK (chunk size in
// bytes), PARALLEL (parallel partial uploads, concatenation).
// Prints "done <upload URL>" or "error ..." and exits 0 or 2.
//
// rpldy sends through XMLHttpRequest, which node lacks; xhr.cjs is the
// smallest XMLHttpRequest over fetch that rpldy's sender uses. It carries
// requests and nothing of the protocol: every tus header, offset and
// decision is rpldy's.
'use strict'
require('./xhr.cjs')
const fs = require('fs')
const path = require('path')
const createUploader = require('@rpldy/uploader').default
const { getTusEnhancer } = require('@rpldy/tus-sender')

async function main() {
  const file = process.env.FILE
  const blob = await fs.openAsBlob(file)
  const f = new File([blob], path.basename(file), { type: 'application/octet-stream' })
  const headers = process.env.TOKEN ? { Authorization: 'Bearer ' + process.env.TOKEN } : {}
  const tus = { chunkSize: Number(process.env.CHUNK || 5 << 20), resume: false, lockedRetryDelay: 200 }
  if (process.env.PARALLEL) tus.parallel = Number(process.env.PARALLEL)
  const uploader = createUploader({
    destination: { url: process.env.ENDPOINT, headers },
    params: { filename: path.basename(file), sha256: process.env.SHA256 || '' },
    enhancer: getTusEnhancer(tus),
    autoUpload: true,
  })
  uploader.on('FILE-FINISH', (item) => {
    console.log('done ' + (item.uploadResponse?.location || item.uploadResponse?.data?.location || ''))
    process.exit(0)
  })
  for (const ev of ['FILE-ERROR', 'FILE-ABORT', 'FILE-CANCEL']) {
    uploader.on(ev, (item) => {
      console.log('error ' + ev + ' ' + JSON.stringify(item.uploadResponse ?? null))
      process.exit(2)
    })
  }
  uploader.add(f)
}
main().catch((e) => { console.log('error ' + e); process.exit(2) })
