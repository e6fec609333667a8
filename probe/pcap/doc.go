// Package pcap reads and writes packet capture files: it lets synprobe
// record every frame it sends and receives for Wireshark and tcpdump
// (synprobe --pcap FILE), and judge the TCP connections of a capture that
// someone else made (synprobe analyze FILE).
//
// Writer writes classic pcap, the one format every tool reads: nanosecond
// timestamps (synprobe's kernel timestamps have them), little-endian,
// snaplen 262144. Its methods may be called from several goroutines, since
// both directions of a link record into one file. The header is written at
// once; packets are buffered until Flush.
//
// Reader reads classic pcap (microsecond or nanosecond timestamps, either
// byte order) and pcapng, told apart by their first bytes. pcapng may hold
// several sections, each in its own byte order and each numbering its
// interfaces afresh, and several interfaces of different link types and
// timestamp resolutions (if_tsresol, a power of 10 or of 2, and
// if_tsoffset). Enhanced, simple and the obsolete packet blocks give
// packets; every other block (name resolution, statistics, decryption
// secrets, custom) is stepped over by its length without being held in
// memory. Packet options (epb_flags and the like) are not read.
//
// Reader is built for streams of millions of packets: it reads in one pass
// and never seeks, so standard input works (tcpdump -w - | synprobe analyze
// -); it keeps one buffer, grown only for a packet that does not fit (so
// memory is bounded by the largest record, never by the file); and Next
// fills a Record the caller owns and hands out the packet bytes in place, so
// reading a packet allocates nothing. Record.Data is therefore valid only
// until the next call to Next.
//
// A capture is untrusted input. Reader never panics, bounds every length it
// reads (256 MiB per record or block, 65536 interfaces per section) and
// grows its buffer only as bytes really arrive, so a forged length costs no
// more memory than the bytes behind it. Damage ends the stream with a
// *FormatError naming the byte offset of the header, record or block and
// what is wrong with it; the packets before it have already been returned,
// so the caller can judge what it read and say where reading stopped. A
// capture cut short, as happens when its writer is killed, wraps
// ErrTruncated.
package pcap
