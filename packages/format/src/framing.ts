/**
 * Bytes of a bundle that no digest covers, fixed so that a reader can check them too
 * (docs/bundle-format.md, "Framing").
 */

/**
 * The bundle's gzip member header, byte for byte: ID1 ID2, CM 8 (deflate), no flags (no name,
 * comment, extra field or header CRC), MTIME 0, XFL 4, OS 3 (Unix). zlib on Linux writes exactly
 * this for levels 0 and 1; the exporter writes it on every platform (zlib's OS byte differs on
 * macOS and Windows), so bundles are reproducible across platforms and every header byte checked.
 */
export const BUNDLE_GZIP_HEADER: Buffer = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x04, 0x03]);

/** The tar block: headers, padded bodies and the end-of-archive marker (two zero blocks). */
export const TAR_BLOCK = 512;
/**
 * The tar record (GNU and bsdtar default: 20 blocks). After the end-of-archive marker a writer may
 * pad with zeros up to a record boundary; a reader accepts that much zero padding and no more.
 */
export const TAR_RECORD = 20 * TAR_BLOCK;
