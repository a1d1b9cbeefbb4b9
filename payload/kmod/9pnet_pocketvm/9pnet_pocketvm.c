// SPDX-License-Identifier: GPL-2.0-only
/*
 * 9pnet_pocketvm: a 9P transport for the pocketvm guest that carries 9P
 * messages in raw Ethernet frames (ethertype 0x88B5, IEEE "local
 * experimental") over one virtio-net card whose QEMU backend is a socketpair
 * held by the launcher (-netdev socket,fd=N). Mounted with
 *
 *     mount -t 9p -o trans=pocketvm,version=9p2000.L,msize=... <ifname> /host
 *
 * Why not trans=fd over a virtio-serial port: the port has no read_iter or
 * write_iter, so a relay process has to copy every byte between the port and
 * two FIFOs, and the port moves 4 KiB buffers; under TCG that capped reads at
 * about 46 MiB/s. Here QEMU copies each frame straight into guest memory
 * (64 KiB per frame); the only copy the guest CPU makes is a reply's payload
 * into the reader's buffer, and a write lends the writer's pages to the
 * frames it sends.
 *
 * Frame: Ethernet header, then
 *     __le32 conn     this mount's connection id (random per mount)
 *     __le16 tag      the 9P tag of the message the fragment belongs to
 *     __le16 flags    PVM_F_*
 *     __le32 offset   byte offset of this fragment within the 9P message
 *     fragment bytes
 * A 9P message is split into fragments of at most PVM_FRAG_MAX bytes sent in
 * order. The launcher never interleaves the fragments of two replies; the
 * guest may (two CPUs sending at once), so the launcher reassembles by tag.
 *
 * Placed reads. The one copy left above, reply payload into the reader's
 * buffer, is the guest CPU's and under TCG it capped reads at about a quarter
 * of QEMU's virtio-9p (which writes into the reader's pages from the host).
 * When the launcher holds guest RAM as a shared file it says so on every
 * frame (PVM_F_CAN_PLACE); a Tread into a user buffer then pins the reader's
 * pages and sends their guest-physical segments after the message, in the
 * same frame (PVM_F_PLACE):
 *     __le32 count, then count x { __le64 phys; __le32 len; }
 * The launcher writes the data straight into those pages and answers with
 * the Rread's 11-byte header alone (PVM_F_PLACED; its size field still
 * counts the data). Any other answer is handled as before (copied). Pages
 * stay pinned until the launcher can no longer write them: the reply, or
 * the Rflush of a killed reader (the launcher drops a placement before it
 * sends Rflush). Page-cache reads (bvec/xarray iterators) are never placed:
 * those pages may be mapped executable, and TCG would not notice a write it
 * did not make itself into a page it has translated code from.
 *
 * Placed writes, the mirror image: with PVM_F_CAN_PLACE, a zero-copy Twrite
 * whose data has pages to lend (a user buffer, or the page cache's) pins
 * them and sends the Twrite's header (its size field still counts the data)
 * and their segments in one frame flagged PVM_F_PLACE, instead of the data.
 * The launcher reads the data from guest RAM as it takes the frame, then
 * serves the Twrite as if the data had come in frames; a segment outside
 * RAM fails that request alone (Rlerror EIO). The pages stay pinned until
 * the reply or the Rflush (a killed writer), so no page the launcher may
 * still read goes back to the allocator. Anything else (a kernel buffer,
 * no PVM_F_CAN_PLACE, this kernel going away) sends the data in frames.
 *
 * The end of this kernel. Placed reads write guest RAM behind the guest's
 * back, so they must stop before that RAM belongs to another kernel. A
 * reset or power-off QEMU sees, and the launcher retires every placement
 * before the guest runs again; kexec starts a new kernel with no reset QEMU
 * sees. So this module's reboot notifier, which every reboot, halt,
 * power-off and kexec runs (kernel_restart_prepare, before device
 * shutdown), stops asking for placements, sends the launcher a frame with
 * PVM_F_RETIRE on each mount and waits for it to come back: the launcher
 * answers only once it has cancelled every placement and retired every
 * connection, so nothing it does afterwards writes this kernel's (or the
 * next one's) pages. A launcher that never answers (one from before this)
 * costs PVM_RETIRE_WAIT.
 *
 * Round trips saved. Under TCG each round trip costs the guest far more
 * than the launcher's work for it, and a stat(2) on a mount without a
 * dentry cache (cache=mmap) is four: Twalk, Tgetattr (the lookup's),
 * Tgetattr again (vfs_getattr's, for the same fid) and Tclunk. Two are
 * answered here:
 *  - A Tgetattr of the fid the last Rgetattr was for, with no other request
 *    sent on the mount since that one and less than PVM_GETATTR_REUSE_NS
 *    after it came, gets that Rgetattr again (its tag changed). Nothing
 *    sent in between could have changed the file through this mount; a
 *    change on the host shows as late as the launcher's own attribute
 *    cache lets it anyway (5 s).
 *  - A Tclunk is answered at once (Rclunk) and sent flagged PVM_F_NOREPLY
 *    when the launcher says it answers no such Tclunk (PVM_F_CAN_QUIET on
 *    its frames): the tag may be used again right away, so no reply may
 *    come for it. The launcher's server takes a clunk in order, before the
 *    next request, so the fid number may be used again at once too. Not
 *    for a fid with an xattr being written (Txattrcreate): its Tclunk
 *    commits the value and the writer needs the answer.
 *  - A Twalk with no names (a clone, which open, create and setattr start
 *    with) likewise: answered at once (Rwalk, no qids) and sent quietly;
 *    the server makes the new fid in order too. Neither can fail for a
 *    client that uses its fids rightly; a failure the launcher would have
 *    answered then shows on the next request that uses the fid.
 *
 * Only root can reach the card (raw frames need CAP_NET_RAW) and it has no IP
 * address: no guest process can talk to the launcher's 9P server but the
 * kernel's 9P client.
 */
#include <linux/etherdevice.h>
#include <linux/if_arp.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/random.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/uio.h>
#include <linux/workqueue.h>
#include <linux/mm.h>
#include <linux/reboot.h>
#include <linux/rwsem.h>
#include <linux/completion.h>
#include <linux/timekeeping.h>
#include <asm/unaligned.h>
#include <net/9p/9p.h>
#include <net/9p/client.h>
#include <net/9p/transport.h>

#define ETH_P_POCKETVM_9P 0x88B5
#define PVM_HDR_LEN 12
/* 16 pages: one skb's page fragments; 14 + 12 + 65536 fits QEMU's 68 KiB frame buffer. */
#define PVM_FRAG_MAX (16 * PAGE_SIZE)
/* 1 MiB of data and a page for the header (NAMESPACE_MSIZE in the launcher). */
#define PVM_MAX_MSIZE (1024 * 1024 + 4096)
/* Below this a fragment goes in the skb's linear part (one allocation). */
#define PVM_LINEAR_MAX 1024

/* Frame flags (struct pvm_hdr.flags). */
#define PVM_F_PLACE 1 /* guest: a Tread followed by the reader's segments */
#define PVM_F_PLACED 2 /* launcher: the data is in the reader's pages; the header alone follows */
#define PVM_F_CAN_PLACE 4 /* launcher, every frame: it can write guest RAM */
#define PVM_F_RETIRE 8 /* guest: this kernel is going away; launcher: every placement is cancelled */
#define PVM_F_NOREPLY 16 /* guest: a Tclunk or clone Twalk it has answered itself; no reply wanted */
#define PVM_F_CAN_QUIET 32 /* launcher, every frame: it answers nothing flagged PVM_F_NOREPLY */
/* How long the reboot notifier waits for the launcher's PVM_F_RETIRE. */
#define PVM_RETIRE_WAIT (5 * HZ)
/* Rread header: size[4] type[1] tag[2] count[4]. */
#define PVM_RREAD_HDR 11
/* An Rgetattr (size, type, tag, then 153 bytes of attributes) and some room. */
#define PVM_RGETATTR_MAX 192
/* How long an Rgetattr answers the same fid's next Tgetattr (see "Round trips saved"). */
#define PVM_GETATTR_REUSE_NS (20 * NSEC_PER_MSEC)
/* Fids with an xattr being written (their Tclunk commits it, its answer matters). */
#define PVM_XATTR_FIDS 8
#define PVM_SEG_LEN 12

struct pvm_hdr {
	__le32 conn;
	__le16 tag;
	__le16 flags;
	__le32 offset;
} __packed;

/* Kept in skb->cb of queued fragments: where the payload starts. */
struct pvm_skb_cb {
	u32 off;
	u32 len;
};
#define PVM_CB(skb) ((struct pvm_skb_cb *)(skb)->cb)

/*
 * A zero-copy read in flight (Tread/Treaddir with a reader's buffer): its
 * reply's payload stays in the received skbs until the reading thread copies
 * it into the buffer itself (user memory is only touched in its context),
 * unless the launcher placed it in the pinned pages. On chan->zc_reads
 * while a reply may come. Allocated, not on the reading thread's stack: a
 * killed reader leaves it behind (orphan) while its pages stay pinned.
 */
struct pvm_zc_read {
	struct list_head list;
	struct p9_req_t *req; /* an orphan holds a reference */
	int in_hdr_len;
	struct sk_buff_head frames;
	bool done;
	bool placed; /* the reply said PVM_F_PLACED and checked out */
	bool orphan; /* its reader was killed before the reply */
	bool write; /* a placed Twrite: the launcher reads the pages, never writes them */
	int err;
	/* The reader's pages, pinned for placement (npages 0: copy path). */
	struct page **pages;
	unsigned int npages;
	u32 pinned; /* bytes of the iterator they cover (= inlen) */
};

struct pvm_chan {
	struct p9_client *client;
	struct net_device *dev;
	struct packet_type pt;
	u32 conn;
	spinlock_t lock; /* the reassembly state, zc_reads and reap */
	struct list_head zc_reads;
	/* Orphans whose reply came: their pages are released in process context. */
	struct list_head reap;
	struct work_struct reap_work;
	/* The launcher can write guest RAM (PVM_F_CAN_PLACE seen). */
	bool host_places;
	/* The launcher sends no reply to a Tclunk flagged PVM_F_NOREPLY (PVM_F_CAN_QUIET seen). */
	bool host_quiet;
	/*
	 * The last Rgetattr (chan->lock; see "Round trips saved"). sent_gen:
	 * requests sent before the Tgetattr tagged ga_tag was; an Rgetattr is
	 * kept only if none was sent since (gen unchanged).
	 */
	u64 gen;
	u64 ga_sent_gen;
	u16 ga_tag;
	bool ga_sent;
	bool ga_valid;
	u32 ga_fid;
	u64 ga_time;
	u32 ga_len;
	u8 ga_buf[PVM_RGETATTR_MAX];
	/* Fids with an xattr being written; xattr_overflow: more than fit, every Tclunk is answered by the launcher. */
	u32 xattr_fids[PVM_XATTR_FIDS];
	unsigned int nxattr;
	bool xattr_overflow;
	/* On pvm_chans (the reboot notifier retires every mount). */
	struct list_head node;
	/* The launcher answered this mount's PVM_F_RETIRE. */
	struct completion retired;
	/*
	 * The reply being received: its fragments arrive in order. rx_req is
	 * NULL while the fragments of a reply nobody waits for are dropped.
	 */
	bool rx_active;
	struct p9_req_t *rx_req; /* holds a p9_tag_lookup reference */
	struct pvm_zc_read *rx_zc;
	u32 rx_total;
	u32 rx_got;
	/* Message bytes below this go to rc.sdata; above it, a zc read's payload. */
	u32 rx_hdr_limit;
	int rx_err;
	u16 rx_tag;
};

/* Every mount (the reboot notifier's list). */
static LIST_HEAD(pvm_chans);
static DEFINE_MUTEX(pvm_chans_lock);
/*
 * Set by the reboot notifier: no placement is asked for from then on. A
 * placed read holds it for reading from its check until its frame is sent,
 * so none is on its way when the notifier asks the launcher to retire.
 */
static DECLARE_RWSEM(pvm_life);
static bool pvm_going_away;

/*
 * What went wrong on the card, for a hung request's post-mortem
 * (/sys/module/9pnet_pocketvm/parameters/, read-only): replies for no
 * request awaiting one (flushed, or lost track of), frames dropped on the way
 * in (a shared skb that could not be cloned, a bad header), and how often
 * the send ring was full. Counted without locks: figures, not bookkeeping.
 */
static unsigned int rx_unmatched;
module_param(rx_unmatched, uint, 0444);
static unsigned int rx_dropped;
module_param(rx_dropped, uint, 0444);
static unsigned int tx_busy;
module_param(tx_busy, uint, 0444);

static struct pvm_zc_read *find_zc_read(struct pvm_chan *chan, struct p9_req_t *req)
{
	struct pvm_zc_read *zc;

	list_for_each_entry(zc, &chan->zc_reads, list)
		if (zc->req == req)
			return zc;
	return NULL;
}

/*
 * Unpins a read's pages; the launcher may have written them, so they are
 * dirty. A page already dirty is left alone (as bio_check_pages_dirty
 * does): a reader reuses its buffer, and under TCG each page's lock and
 * unlock cost more than the rest of a placed read's guest work.
 */
static void unpin_reader_pages(struct pvm_zc_read *zc)
{
	unsigned int i;

	for (i = 0; i < zc->npages && !zc->write; i++)
		if (!PageDirty(zc->pages[i]))
			set_page_dirty_lock(zc->pages[i]);
	release_pages(zc->pages, zc->npages);
	kvfree(zc->pages);
	zc->pages = NULL;
	zc->npages = 0;
}

static void free_orphan(struct p9_client *client, struct pvm_zc_read *zc)
{
	unpin_reader_pages(zc);
	__skb_queue_purge(&zc->frames);
	p9_req_put(client, zc->req);
	kfree(zc);
}

static void reap_orphans(struct work_struct *work)
{
	struct pvm_chan *chan = container_of(work, struct pvm_chan, reap_work);
	struct pvm_zc_read *zc, *next;
	LIST_HEAD(dead);

	spin_lock_bh(&chan->lock);
	list_splice_init(&chan->reap, &dead);
	spin_unlock_bh(&chan->lock);
	list_for_each_entry_safe(zc, next, &dead, list)
		free_orphan(chan->client, zc);
}

/* An Rgetattr that may answer the same fid's next Tgetattr (chan->lock held; "Round trips saved"). */
static void keep_getattr(struct pvm_chan *chan, struct p9_req_t *req)
{
	if (!chan->ga_sent || chan->ga_tag != req->tc.tag || req->tc.id != P9_TGETATTR)
		return;
	chan->ga_sent = false;
	if (chan->gen != chan->ga_sent_gen || req->rc.size > PVM_RGETATTR_MAX || req->rc.size < 7 || req->rc.sdata[4] != P9_RGETATTR)
		return;
	memcpy(chan->ga_buf, req->rc.sdata, req->rc.size);
	chan->ga_len = req->rc.size;
	chan->ga_fid = get_unaligned_le32(req->tc.sdata + 7);
	chan->ga_time = ktime_get_mono_fast_ns();
	chan->ga_valid = true;
}

/* Ends the reply in progress (chan->lock held). err: 0 complete, else failed. */
static void finish_rx(struct pvm_chan *chan, int err)
{
	struct p9_req_t *req = chan->rx_req;
	struct pvm_zc_read *zc = chan->rx_zc;

	chan->rx_active = false;
	chan->rx_req = NULL;
	chan->rx_zc = NULL;
	if (!req)
		return;
	if (!err)
		err = chan->rx_err;
	if (zc && zc->orphan) {
		/*
		 * Its reader was killed: nobody takes the payload. The launcher
		 * writes nothing more into the pages; set_page_dirty_lock may
		 * sleep, so they are released from a work item.
		 */
		list_del(&zc->list);
		__skb_queue_purge(&zc->frames);
		list_add_tail(&zc->list, &chan->reap);
		schedule_work(&chan->reap_work);
		req->t_err = -EINTR;
		p9_client_cb(chan->client, req, REQ_STATUS_ERROR);
	} else if (zc) {
		/* The reading thread copies the payload and completes the request. */
		zc->done = true;
		zc->err = err;
		wake_up(&req->wq);
	} else if (err) {
		req->t_err = err;
		p9_client_cb(chan->client, req, REQ_STATUS_ERROR);
	} else {
		req->rc.size = chan->rx_total;
		keep_getattr(chan, req);
		p9_client_cb(chan->client, req, REQ_STATUS_RCVD);
	}
	p9_req_put(chan->client, req); /* the p9_tag_lookup reference */
}

/* Starts a reply: its first fragment tells the size, type and tag (chan->lock held). */
static int start_rx(struct pvm_chan *chan, struct sk_buff *skb, u16 tag, u16 flags, u32 frag_len)
{
	u8 head[PVM_RREAD_HDR];
	u32 size;
	struct p9_req_t *req;

	if (frag_len < 7 || skb_copy_bits(skb, PVM_HDR_LEN, head, min_t(u32, frag_len, sizeof(head))))
		return -EPROTO;
	size = get_unaligned_le32(head);
	if (get_unaligned_le16(head + 5) != tag || size < 7 || size >= chan->client->msize)
		return -EPROTO;
	chan->rx_active = true;
	/* A placed reply's frame holds the header alone; its size counts the placed data. */
	chan->rx_total = flags & PVM_F_PLACED ? frag_len : size;
	chan->rx_got = 0;
	chan->rx_tag = tag;
	chan->rx_err = 0;
	req = p9_tag_lookup(chan->client, tag);
	if (!req || READ_ONCE(req->status) != REQ_STATUS_SENT) {
		/* A reply to a flushed or unknown request: dropped. */
		rx_unmatched++;
		if (req)
			p9_req_put(chan->client, req);
		return 0;
	}
	chan->rx_req = req;
	chan->rx_zc = find_zc_read(chan, req);
	chan->rx_hdr_limit = req->rc.capacity;
	if (chan->rx_zc && head[4] != P9_RLERROR)
		chan->rx_hdr_limit = min_t(u32, chan->rx_hdr_limit, chan->rx_zc->in_hdr_len);
	if (flags & PVM_F_PLACED) {
		struct pvm_zc_read *zc = chan->rx_zc;

		if (zc && zc->npages && head[4] == P9_RREAD && frag_len == PVM_RREAD_HDR &&
		    get_unaligned_le32(head + 7) <= zc->pinned && size == PVM_RREAD_HDR + get_unaligned_le32(head + 7))
			zc->placed = true;
		else
			chan->rx_err = -EIO;
		return 0;
	}
	/* A reply that does not fit where the client expects it is refused. */
	if (!chan->rx_zc && size > req->rc.capacity)
		chan->rx_err = -EIO;
	return 0;
}

/* One fragment of the reply in progress; consumes the skb (chan->lock held). */
static void take_fragment(struct pvm_chan *chan, struct sk_buff *skb, u32 frag_len)
{
	struct p9_req_t *req = chan->rx_req;
	u32 at = chan->rx_got;
	u32 src = PVM_HDR_LEN;

	chan->rx_got += frag_len;
	if (req && at < chan->rx_hdr_limit) {
		u32 n = min(frag_len, chan->rx_hdr_limit - at);

		skb_copy_bits(skb, src, req->rc.sdata + at, n);
		src += n;
		frag_len -= n;
	}
	if (req && chan->rx_zc && frag_len > 0) {
		PVM_CB(skb)->off = src;
		PVM_CB(skb)->len = frag_len;
		__skb_queue_tail(&chan->rx_zc->frames, skb);
		return;
	}
	kfree_skb(skb);
}

static int pvm_rcv(struct sk_buff *skb, struct net_device *dev, struct packet_type *pt, struct net_device *orig_dev)
{
	struct pvm_chan *chan = container_of(pt, struct pvm_chan, pt);
	struct pvm_hdr hdr;
	u32 offset, frag_len;
	u16 tag, flags;

	if (skb->pkt_type == PACKET_OTHERHOST || skb->pkt_type == PACKET_OUTGOING)
		goto drop;
	skb = skb_share_check(skb, GFP_ATOMIC);
	if (!skb) {
		rx_dropped++;
		return NET_RX_DROP;
	}
	if (skb->len < PVM_HDR_LEN || skb_copy_bits(skb, 0, &hdr, sizeof(hdr)))
		goto drop;
	if (le32_to_cpu(hdr.conn) != chan->conn)
		goto drop;
	tag = le16_to_cpu(hdr.tag);
	flags = le16_to_cpu(hdr.flags);
	if (flags & PVM_F_RETIRE) {
		/* The launcher's answer to the reboot notifier: a header alone. */
		complete(&chan->retired);
		goto drop;
	}
	offset = le32_to_cpu(hdr.offset);
	frag_len = skb->len - PVM_HDR_LEN;
	if ((flags & PVM_F_CAN_PLACE) && !READ_ONCE(chan->host_places))
		WRITE_ONCE(chan->host_places, true);
	if ((flags & PVM_F_CAN_QUIET) && !READ_ONCE(chan->host_quiet))
		WRITE_ONCE(chan->host_quiet, true);

	spin_lock(&chan->lock);
	if (offset == 0) {
		if (chan->rx_active) {
			pr_warn_ratelimited("9pnet_pocketvm: reply to tag %u cut short\n", chan->rx_tag);
			finish_rx(chan, -EIO);
		}
		if (start_rx(chan, skb, tag, flags, frag_len)) {
			pr_warn_ratelimited("9pnet_pocketvm: malformed reply (tag %u)\n", tag);
			goto unlock_drop;
		}
	} else if (!chan->rx_active || tag != chan->rx_tag || offset != chan->rx_got) {
		pr_warn_ratelimited("9pnet_pocketvm: fragment out of order (tag %u offset %u)\n", tag, offset);
		if (chan->rx_active)
			finish_rx(chan, -EIO);
		goto unlock_drop;
	}
	if (frag_len > chan->rx_total - chan->rx_got) {
		finish_rx(chan, -EIO);
		goto unlock_drop;
	}
	take_fragment(chan, skb, frag_len);
	if (chan->rx_got == chan->rx_total)
		finish_rx(chan, 0);
	spin_unlock(&chan->lock);
	return NET_RX_SUCCESS;
unlock_drop:
	spin_unlock(&chan->lock);
	rx_dropped++;
drop:
	kfree_skb(skb);
	return NET_RX_DROP;
}

/* Copies up to `len` bytes from an iov_iter into fresh page fragments; returns the bytes taken. */
static ssize_t copy_iter_frags(struct sk_buff *skb, struct iov_iter *from, u32 len)
{
	int i = skb_shinfo(skb)->nr_frags;
	ssize_t taken = 0;

	while (len > 0 && i < MAX_SKB_FRAGS) {
		u32 n = min_t(u32, len, PAGE_SIZE);
		struct page *page = alloc_page(GFP_NOFS);

		if (!page)
			return -ENOMEM;
		skb_fill_page_desc(skb, i++, page, 0, n);
		skb->len += n;
		skb->data_len += n;
		skb->truesize += PAGE_SIZE;
		if (copy_from_iter(page_address(page), n, from) != n)
			return -EFAULT;
		taken += n;
		len -= n;
	}
	return taken;
}

/*
 * Attaches up to `len` bytes of the writer's buffer to skb as page
 * fragments, without copying: the pages are referenced (iov_iter_get_pages2)
 * and released when virtio-net frees the frame, after QEMU has read it. The
 * Rwrite that ends the write comes only after that. Returns the bytes
 * attached (bounded by the fragment slots left), or an error.
 */
static ssize_t attach_frags(struct sk_buff *skb, struct iov_iter *from, u32 len)
{
	struct page *pages[MAX_SKB_FRAGS];
	int i = skb_shinfo(skb)->nr_frags;
	ssize_t attached = 0;

	while (len > 0 && i < MAX_SKB_FRAGS) {
		size_t start;
		ssize_t got = iov_iter_get_pages2(from, pages, len, MAX_SKB_FRAGS - i, &start);
		int k = 0;

		if (got <= 0) {
			if (attached > 0)
				return attached;
			/* Memory with no pages to lend (a kernel buffer): copy it instead. */
			return copy_iter_frags(skb, from, len);
		}
		len -= got;
		attached += got;
		while (got > 0) {
			u32 n = min_t(size_t, PAGE_SIZE - start, got);

			skb_fill_page_desc(skb, i++, pages[k++], start, n);
			skb->len += n;
			skb->data_len += n;
			skb->truesize += PAGE_SIZE;
			got -= n;
			start = 0;
		}
	}
	return attached;
}

/*
 * Hands one frame to the card, waiting while its ring is full. Straight to
 * the driver, not through a qdisc: a queueing discipline may drop or delay
 * frames (fq_codel, Debian's default, drops by sojourn time), and a lost
 * fragment loses its whole request. Observed too: through this kernel's
 * lockless pfifo_fast bypass the same skb reached virtio_net twice, which
 * sent the frame twice and freed it twice. And not dev_direct_xmit: that
 * frees the skb when the driver says NETDEV_TX_BUSY, so a retry sent freed
 * memory and the frame itself was lost (a write's data missing, or a
 * request never answered). __dev_direct_xmit leaves a busy skb to us and
 * consumes it otherwise.
 */
static int xmit_frame(struct net_device *dev, struct sk_buff *skb)
{
	unsigned long deadline = jiffies + 30 * HZ;

	for (;;) {
		int rc = __dev_direct_xmit(skb, 0);

		if (rc == NETDEV_TX_OK)
			return 0;
		if (rc != NETDEV_TX_BUSY)
			return -EIO; /* consumed and dropped: the link is down */
		tx_busy++;
		if (time_after(jiffies, deadline)) {
			kfree_skb(skb);
			return -EIO;
		}
		usleep_range(50, 200);
	}
}

/*
 * A frame with room for `linear` bytes after our header, the header filled
 * in (conn, tag, flags, offset); the Ethernet header is the caller's.
 */
static struct sk_buff *pvm_alloc_frame(struct pvm_chan *chan, u32 linear, u16 tag, u16 flags, u32 offset, gfp_t gfp)
{
	struct net_device *dev = chan->dev;
	struct pvm_hdr *hdr;
	struct sk_buff *skb;

	skb = alloc_skb(LL_RESERVED_SPACE(dev) + PVM_HDR_LEN + linear + dev->needed_tailroom, gfp);
	if (!skb)
		return NULL;
	skb_reserve(skb, LL_RESERVED_SPACE(dev));
	skb_reset_network_header(skb);
	hdr = skb_put(skb, PVM_HDR_LEN);
	hdr->conn = cpu_to_le32(chan->conn);
	hdr->tag = cpu_to_le16(tag);
	hdr->flags = cpu_to_le16(flags);
	hdr->offset = cpu_to_le32(offset);
	return skb;
}

/*
 * Sends one 9P message: `head` (tc) followed by `data_len` bytes of `data`
 * (a writer's buffer, zero-copy Twrite), in fragments.
 */
static int send_message(struct pvm_chan *chan, u16 tag, u16 flags, const u8 *head, u32 head_len, struct iov_iter *data, u32 data_len)
{
	struct net_device *dev = chan->dev;
	u32 total = head_len + data_len;
	u32 offset = 0;

	/* Each frame: what is left of head, then as much of data as its fragment slots take. */
	while (offset < total) {
		u32 from_head = offset < head_len ? min_t(u32, head_len - offset, PVM_FRAG_MAX) : 0;
		u32 linear = from_head <= PVM_LINEAR_MAX ? from_head : 0;
		u32 room = PVM_FRAG_MAX - from_head;
		u32 from_data = min_t(u32, total - offset - from_head, room);
		struct sk_buff *skb;
		int err = 0;

		skb = pvm_alloc_frame(chan, linear, tag, flags, offset, GFP_NOFS);
		if (!skb)
			return -ENOMEM;
		if (linear) {
			skb_put_data(skb, head + offset, linear);
		} else if (from_head) {
			/* A long head (rare: a large non-zero-copy request) is copied like data. */
			struct kvec kv = { .iov_base = (void *)(head + offset), .iov_len = from_head };
			struct iov_iter it;
			ssize_t got;

			iov_iter_kvec(&it, ITER_SOURCE, &kv, 1, from_head);
			got = copy_iter_frags(skb, &it, from_head);
			if (got != from_head)
				err = got < 0 ? got : -EMSGSIZE;
		}
		if (!err && from_data > 0) {
			ssize_t got = attach_frags(skb, data, from_data);

			if (got < 0)
				err = got;
			else
				from_data = got;
		}
		if (err) {
			kfree_skb(skb);
			return err;
		}
		skb->dev = dev;
		skb->protocol = htons(ETH_P_POCKETVM_9P);
		if (dev_hard_header(skb, dev, ETH_P_POCKETVM_9P, dev->broadcast, dev->dev_addr, skb->len) < 0) {
			kfree_skb(skb);
			return -EINVAL;
		}
		err = xmit_frame(dev, skb);
		if (err)
			return err;
		offset += from_head + from_data;
	}
	return 0;
}

/* Answers a request here with `len` bytes of reply (its tag set): the client takes it as it would the launcher's. */
static void answer_here(struct pvm_chan *chan, struct p9_req_t *req, const u8 *reply, u32 len)
{
	memcpy(req->rc.sdata, reply, len);
	put_unaligned_le16(req->tc.tag, req->rc.sdata + 5);
	req->rc.size = len;
	p9_client_cb(chan->client, req, REQ_STATUS_RCVD);
}

/*
 * Before a request is sent (chan->lock held): whether it is a Tgetattr the
 * last Rgetattr answers (copied to `reply`), else its part in what the
 * later ones may reuse; and whether it is a Tclunk or a clone Twalk to send
 * quietly (`quiet`: the reply to give it here).
 */
static bool answered_before_sending(struct pvm_chan *chan, struct p9_req_t *req, u8 *reply, u32 *len, const u8 **quiet)
{
	static const u8 rclunk[7] = { 7, 0, 0, 0, P9_RCLUNK, 0, 0 };
	static const u8 rwalk_clone[9] = { 9, 0, 0, 0, P9_RWALK, 0, 0, 0, 0 };
	u32 fid = req->tc.size >= 11 ? get_unaligned_le32(req->tc.sdata + 7) : 0;
	bool host_quiet = READ_ONCE(chan->host_quiet) && req->rc.capacity >= sizeof(rwalk_clone);
	unsigned int i;

	*quiet = NULL;
	if (req->tc.id == P9_TGETATTR) {
		if (chan->ga_valid && chan->ga_fid == fid && chan->ga_len <= req->rc.capacity &&
		    ktime_get_mono_fast_ns() - chan->ga_time < PVM_GETATTR_REUSE_NS) {
			memcpy(reply, chan->ga_buf, chan->ga_len);
			*len = chan->ga_len;
			return true;
		}
		chan->ga_sent = true;
		chan->ga_sent_gen = chan->gen;
		chan->ga_tag = req->tc.tag;
		return false;
	}
	/* Anything else may change what a kept Rgetattr says. */
	chan->gen++;
	chan->ga_valid = false;
	if (req->tc.id == P9_TXATTRCREATE) {
		if (chan->nxattr < PVM_XATTR_FIDS)
			chan->xattr_fids[chan->nxattr++] = fid;
		else
			chan->xattr_overflow = true;
	} else if (req->tc.id == P9_TCLUNK) {
		for (i = 0; i < chan->nxattr; i++) {
			if (chan->xattr_fids[i] == fid) {
				chan->xattr_fids[i] = chan->xattr_fids[--chan->nxattr];
				return false;
			}
		}
		if (host_quiet && !chan->xattr_overflow)
			*quiet = rclunk;
	} else if (req->tc.id == P9_TWALK && req->tc.size == 17 && get_unaligned_le16(req->tc.sdata + 15) == 0) {
		if (host_quiet)
			*quiet = rwalk_clone;
	}
	return false;
}

static int pvm_request(struct p9_client *client, struct p9_req_t *req)
{
	struct pvm_chan *chan = client->trans;
	u8 reply[PVM_RGETATTR_MAX];
	const u8 *quiet;
	u32 len = 0;
	bool answered;
	int err;

	spin_lock_bh(&chan->lock);
	answered = answered_before_sending(chan, req, reply, &len, &quiet);
	spin_unlock_bh(&chan->lock);
	WRITE_ONCE(req->status, REQ_STATUS_SENT);
	if (answered) {
		answer_here(chan, req, reply, len);
		return 0;
	}
	err = send_message(chan, req->tc.tag, quiet ? PVM_F_NOREPLY : 0, req->tc.sdata, req->tc.size, NULL, 0);
	if (!err && quiet) {
		answer_here(chan, req, quiet, get_unaligned_le32(quiet));
		return 0;
	}
	if (err) {
		/* Not (wholly) sent: no reply will come; the client drops its references. */
		spin_lock_bh(&chan->lock);
		WRITE_ONCE(req->status, REQ_STATUS_ERROR);
		spin_unlock_bh(&chan->lock);
		pr_warn_ratelimited("9pnet_pocketvm: sending a request failed (%d)\n", err);
		return -EIO;
	}
	return 0;
}

/* Copies a zero-copy read's payload out of its fragments into the reader's buffer. */
static int copy_zc_payload(struct pvm_zc_read *zc, struct iov_iter *to, int inlen)
{
	struct sk_buff *skb;
	int room = inlen;
	int err = 0;

	while ((skb = __skb_dequeue(&zc->frames)) != NULL) {
		u32 n = min_t(u32, PVM_CB(skb)->len, room);

		if (!err && n > 0 && skb_copy_datagram_iter(skb, PVM_CB(skb)->off, to, n))
			err = -EFAULT;
		room -= n;
		kfree_skb(skb);
	}
	return err;
}

/*
 * Pins the `len` bytes of the reader's buffer that the reply's data would
 * fill, and builds the frame head for a placed read: the message `msg`
 * followed by the pages' guest-physical segments (contiguous ones merged).
 * 0: pinned, *head holds the head (kfree it); else nothing stays pinned and
 * the iterator is where it was (the read takes the copy path).
 */
static int pin_for_placement(struct pvm_zc_read *zc, struct iov_iter *iter, u32 len, const u8 *msg, u32 msg_len, u8 **head, u32 *head_len)
{
	unsigned int max_pages = DIV_ROUND_UP(len, PAGE_SIZE) + 2;
	/* All in one frame: the launcher reads the list from the request's only fragment. */
	u32 max_segs = min_t(u32, (PVM_FRAG_MAX - msg_len - 4) / PVM_SEG_LEN, max_pages);
	u32 nsegs = 0, pinned = 0;
	u64 last_end = 0;
	u8 *buf, *seg;
	unsigned int i;

	zc->pages = kvmalloc_array(max_pages, sizeof(struct page *), GFP_NOFS);
	buf = kmalloc(msg_len + 4 + max_segs * PVM_SEG_LEN, GFP_NOFS);
	if (!zc->pages || !buf)
		goto fail;
	memcpy(buf, msg, msg_len);
	seg = buf + msg_len + 4;
	while (pinned < len) {
		size_t start;
		ssize_t got = iov_iter_get_pages2(iter, zc->pages + zc->npages, len - pinned, max_pages - zc->npages, &start);
		unsigned int k = zc->npages;

		if (got <= 0)
			goto fail;
		pinned += got;
		zc->npages += DIV_ROUND_UP(start + got, PAGE_SIZE);
		for (; got > 0; start = 0) {
			u32 n = min_t(size_t, PAGE_SIZE - start, got);
			u64 phys = page_to_phys(zc->pages[k++]) + start;

			if (nsegs > 0 && phys == last_end) {
				put_unaligned_le32(get_unaligned_le32(seg - 4) + n, seg - 4);
			} else {
				if (nsegs == max_segs)
					goto fail;
				put_unaligned_le64(phys, seg);
				put_unaligned_le32(n, seg + 8);
				seg += PVM_SEG_LEN;
				nsegs++;
			}
			last_end = phys + n;
			got -= n;
		}
	}
	put_unaligned_le32(nsegs, buf + msg_len);
	zc->pinned = pinned;
	*head = buf;
	*head_len = seg - buf;
	return 0;
fail:
	/* Nothing was written into these pages: released clean. */
	for (i = 0; i < zc->npages; i++)
		put_page(zc->pages[i]);
	kvfree(zc->pages);
	zc->pages = NULL;
	zc->npages = 0;
	iov_iter_revert(iter, pinned);
	kfree(buf);
	return -EAGAIN;
}

static void free_zc_read(struct pvm_zc_read *zc)
{
	unpin_reader_pages(zc);
	__skb_queue_purge(&zc->frames);
	kfree(zc);
}

static int pvm_zc_request(struct p9_client *client, struct p9_req_t *req, struct iov_iter *uidata, struct iov_iter *uodata,
			  int inlen, int outlen, int in_hdr_len)
{
	struct pvm_chan *chan = client->trans;
	struct pvm_zc_read *zc = NULL;
	const u8 *head = req->tc.sdata;
	u32 head_len = req->tc.size;
	u8 *placing = NULL;
	u16 flags = 0;
	bool send_data = true;
	bool life_held = false;
	int err;

	spin_lock_bh(&chan->lock);
	chan->gen++;
	chan->ga_valid = false;
	spin_unlock_bh(&chan->lock);
	if (uodata) {
		/* The size field covers the data too; a short buffer sends what it has. */
		u32 avail = min_t(size_t, outlen, iov_iter_count(uodata));

		if (avail != outlen)
			put_unaligned_le32(avail, req->tc.sdata + req->tc.size - 4);
		put_unaligned_le32(req->tc.size + avail, req->tc.sdata);
		outlen = avail;
	}
	if (uodata && !uidata && outlen > 0 && READ_ONCE(chan->host_places) && head[4] == P9_TWRITE) {
		/* A placed write: see "Placed writes" above. */
		zc = kzalloc(sizeof(*zc), GFP_NOFS);
		if (zc) {
			zc->req = req;
			zc->in_hdr_len = in_hdr_len;
			zc->write = true;
			__skb_queue_head_init(&zc->frames);
			down_read(&pvm_life);
			life_held = true;
			if (!pvm_going_away && !pin_for_placement(zc, uodata, outlen, head, head_len, &placing, &head_len)) {
				head = placing;
				flags = PVM_F_PLACE;
				send_data = false;
				spin_lock_bh(&chan->lock);
				list_add(&zc->list, &chan->zc_reads);
				spin_unlock_bh(&chan->lock);
			} else {
				/* Not placed (no pages to lend, or going away): the data goes in frames. */
				kfree(zc);
				zc = NULL;
			}
		}
	}
	if (uidata) {
		zc = kzalloc(sizeof(*zc), GFP_NOFS);
		if (!zc) {
			WRITE_ONCE(req->status, REQ_STATUS_ERROR);
			p9_req_put(client, req); /* the reference a reply would have dropped */
			return -ENOMEM;
		}
		zc->req = req;
		zc->in_hdr_len = in_hdr_len;
		__skb_queue_head_init(&zc->frames);
		/* Only a user buffer is placed: see "Placed reads" above. */
		if (READ_ONCE(chan->host_places) && head[4] == P9_TREAD && inlen > 0 && user_backed_iter(uidata)) {
			/* Not once this kernel is going away (pvm_reboot). */
			down_read(&pvm_life);
			life_held = true;
			if (!pvm_going_away && !pin_for_placement(zc, uidata, inlen, head, head_len, &placing, &head_len)) {
				head = placing;
				flags = PVM_F_PLACE;
			}
		}
		spin_lock_bh(&chan->lock);
		list_add(&zc->list, &chan->zc_reads);
		spin_unlock_bh(&chan->lock);
	}
	WRITE_ONCE(req->status, REQ_STATUS_SENT);
	err = send_message(chan, req->tc.tag, flags, head, head_len, send_data ? uodata : NULL, uodata && send_data ? outlen : 0);
	if (life_held)
		up_read(&pvm_life);
	kfree(placing);
	if (err) {
		spin_lock_bh(&chan->lock);
		if (zc)
			list_del(&zc->list);
		WRITE_ONCE(req->status, REQ_STATUS_ERROR);
		spin_unlock_bh(&chan->lock);
		if (zc) {
			/* A placed read or write is one frame: not sent, so nothing touches its pages. */
			if (zc->npages)
				iov_iter_revert(zc->write ? uodata : uidata, zc->pinned);
			free_zc_read(zc);
		}
		pr_warn_ratelimited("9pnet_pocketvm: sending a request failed (%d)\n", err);
		/* No reply will come: drop the reference a reply would have dropped. */
		p9_req_put(client, req);
		return err == -EFAULT ? -EFAULT : -EIO;
	}
	if (!zc)
		return wait_event_killable(req->wq, READ_ONCE(req->status) >= REQ_STATUS_RCVD);

	err = wait_event_killable(req->wq, READ_ONCE(zc->done));
	spin_lock_bh(&chan->lock);
	if (!zc->done) {
		if (zc->npages) {
			/*
			 * Killed while the launcher may still write (a read) or
			 * read (a write) the pages: they
			 * stay pinned until the reply (finish_rx) or the Rflush
			 * (pvm_cancelled) says it will not.
			 */
			zc->orphan = true;
			p9_req_get(req);
			spin_unlock_bh(&chan->lock);
			return err;
		}
		/* Killed: the reply, if it comes, completes the request without us. */
		list_del(&zc->list);
		if (chan->rx_zc == zc)
			chan->rx_zc = NULL;
		spin_unlock_bh(&chan->lock);
		free_zc_read(zc);
		return err;
	}
	list_del(&zc->list);
	spin_unlock_bh(&chan->lock);
	if (zc->write) {
		/* The launcher has read the pages (it answers only after): released clean. */
		err = zc->err;
		/* The whole reply is in rc (Rwrite or Rlerror); a longer one is refused. */
		if (!err && get_unaligned_le32(req->rc.sdata) > req->rc.capacity)
			err = -EIO;
		free_zc_read(zc);
		if (err) {
			req->t_err = err;
			p9_client_cb(client, req, REQ_STATUS_ERROR);
			return 0;
		}
		req->rc.size = get_unaligned_le32(req->rc.sdata);
		p9_client_cb(client, req, REQ_STATUS_RCVD);
		return 0;
	}
	if (zc->placed && !zc->err) {
		/* The data is in the pages; the iterator already stands past them. */
		free_zc_read(zc);
		req->rc.size = get_unaligned_le32(req->rc.sdata);
		p9_client_cb(client, req, REQ_STATUS_RCVD);
		return 0;
	}
	/* Not placed: the payload is copied from the frames into the buffer as it was. */
	if (zc->npages)
		iov_iter_revert(uidata, zc->pinned);
	if (zc->err) {
		req->t_err = zc->err;
		free_zc_read(zc);
		/* A broken reply fails this request only (an error return would disconnect). */
		p9_client_cb(client, req, REQ_STATUS_ERROR);
		return 0;
	}
	err = copy_zc_payload(zc, uidata, inlen);
	free_zc_read(zc);
	req->rc.size = get_unaligned_le32(req->rc.sdata);
	p9_client_cb(client, req, REQ_STATUS_RCVD);
	return err;
}

static int pvm_cancel(struct p9_client *client, struct p9_req_t *req)
{
	/* Requests are sent as they are made: there is never one to take back. */
	return 1;
}

static int pvm_cancelled(struct p9_client *client, struct p9_req_t *req)
{
	struct pvm_chan *chan = client->trans;

	struct pvm_zc_read *zc;

	/* After Rflush no reply for the old tag comes: drop the reference it would have. */
	spin_lock_bh(&chan->lock);
	if (READ_ONCE(req->status) != REQ_STATUS_SENT || chan->rx_req == req) {
		spin_unlock_bh(&chan->lock);
		return 0;
	}
	/* A killed reader's pinned pages: the launcher dropped their placement before Rflush. */
	zc = find_zc_read(chan, req);
	if (zc)
		list_del(&zc->list);
	WRITE_ONCE(req->status, REQ_STATUS_FLSHD);
	spin_unlock_bh(&chan->lock);
	if (zc)
		free_orphan(client, zc);
	p9_req_put(client, req);
	return 0;
}

static int pvm_create(struct p9_client *client, const char *devname, char *args)
{
	struct pvm_chan *chan;
	struct net_device *dev;

	if (!devname)
		return -EINVAL;
	dev = dev_get_by_name(&init_net, devname);
	if (!dev)
		return -ENODEV;
	if (dev->type != ARPHRD_ETHER || !netif_running(dev)) {
		int err = dev->type != ARPHRD_ETHER ? -EINVAL : -ENETDOWN;

		dev_put(dev);
		return err;
	}
	chan = kzalloc(sizeof(*chan), GFP_KERNEL);
	if (!chan) {
		dev_put(dev);
		return -ENOMEM;
	}
	chan->client = client;
	chan->dev = dev;
	/* Random: a reply meant for an earlier mount of the same card never matches. */
	chan->conn = get_random_u32() | 1;
	spin_lock_init(&chan->lock);
	INIT_LIST_HEAD(&chan->zc_reads);
	INIT_LIST_HEAD(&chan->reap);
	INIT_WORK(&chan->reap_work, reap_orphans);
	init_completion(&chan->retired);
	chan->pt.type = htons(ETH_P_POCKETVM_9P);
	chan->pt.dev = dev;
	chan->pt.func = pvm_rcv;
	/*
	 * Scatter-gather without checksum offload: QEMU offers no checksum
	 * feature when the backend has no virtio-net header (a socket), and
	 * the stack then turns SG off, which makes every 64 KiB fragment a
	 * linear copy. virtio-net's descriptors take page fragments either
	 * way, and this card carries no IP traffic that would need a checksum.
	 */
	dev->features |= NETIF_F_SG;
	client->trans = chan;
	dev_add_pack(&chan->pt);
	mutex_lock(&pvm_chans_lock);
	list_add(&chan->node, &pvm_chans);
	mutex_unlock(&pvm_chans_lock);
	client->status = Connected;
	return 0;
}

static void pvm_close(struct p9_client *client)
{
	struct pvm_chan *chan = client->trans;
	struct pvm_zc_read *zc, *next;

	if (!chan)
		return;
	client->status = Disconnected;
	mutex_lock(&pvm_chans_lock);
	list_del(&chan->node);
	mutex_unlock(&pvm_chans_lock);
	dev_remove_pack(&chan->pt); /* waits for receivers in flight */
	spin_lock_bh(&chan->lock);
	finish_rx(chan, -ECONNRESET);
	spin_unlock_bh(&chan->lock);
	cancel_work_sync(&chan->reap_work);
	reap_orphans(&chan->reap_work);
	list_for_each_entry_safe(zc, next, &chan->zc_reads, list) {
		/*
		 * A killed reader's read the launcher never answered: it may
		 * still write those pages, so they stay pinned (leaked) rather
		 * than return to the allocator.
		 */
		list_del(&zc->list);
		pr_warn("9pnet_pocketvm: %u pages of an unanswered read stay pinned\n", zc->npages);
		kvfree(zc->pages);
		zc->pages = NULL;
		zc->npages = 0;
		free_orphan(client, zc);
	}
	dev_put(chan->dev);
	client->trans = NULL;
	kfree(chan);
}

/* A frame of the header alone: conn, no tag, `flags`. */
static int send_control(struct pvm_chan *chan, u16 flags)
{
	struct net_device *dev = chan->dev;
	struct sk_buff *skb;

	skb = pvm_alloc_frame(chan, 0, P9_NOTAG, flags, 0, GFP_KERNEL);
	if (!skb)
		return -ENOMEM;
	skb->dev = dev;
	skb->protocol = htons(ETH_P_POCKETVM_9P);
	if (dev_hard_header(skb, dev, ETH_P_POCKETVM_9P, dev->broadcast, dev->dev_addr, skb->len) < 0) {
		kfree_skb(skb);
		return -EINVAL;
	}
	return xmit_frame(dev, skb);
}

/*
 * Reboot, halt, power-off and kexec (kernel_restart_prepare and
 * kernel_shutdown_prepare run the reboot notifiers before device shutdown):
 * no more placements, and the launcher has cancelled every one it had
 * before this returns (see "The end of this kernel" above).
 */
static int pvm_reboot(struct notifier_block *nb, unsigned long action, void *data)
{
	struct pvm_chan *chan;

	down_write(&pvm_life);
	pvm_going_away = true;
	up_write(&pvm_life);
	mutex_lock(&pvm_chans_lock);
	list_for_each_entry(chan, &pvm_chans, node) {
		int err;

		if (!READ_ONCE(chan->host_places))
			continue; /* a launcher that places nothing has nothing to retire */
		reinit_completion(&chan->retired);
		err = send_control(chan, PVM_F_RETIRE);
		if (err)
			pr_warn("9pnet_pocketvm: could not ask the launcher to retire placed reads (%d)\n", err);
		else if (!wait_for_completion_timeout(&chan->retired, PVM_RETIRE_WAIT))
			pr_warn("9pnet_pocketvm: the launcher did not confirm that placed reads are retired\n");
		else
			pr_info("9pnet_pocketvm: placed reads retired by the launcher before %s\n",
				action == SYS_RESTART ? "restart or kexec" : action == SYS_POWER_OFF ? "power-off" : "halt");
	}
	mutex_unlock(&pvm_chans_lock);
	return NOTIFY_DONE;
}

static struct notifier_block pvm_reboot_nb = {
	.notifier_call = pvm_reboot,
};

static struct p9_trans_module p9_pocketvm_trans = {
	.name = "pocketvm",
	.maxsize = PVM_MAX_MSIZE,
	.pooled_rbuffers = false,
	.def = 0,
	.create = pvm_create,
	.close = pvm_close,
	.request = pvm_request,
	.zc_request = pvm_zc_request,
	.cancel = pvm_cancel,
	.cancelled = pvm_cancelled,
	.owner = THIS_MODULE,
};

static int __init p9_pocketvm_init(void)
{
	int err = register_reboot_notifier(&pvm_reboot_nb);

	if (err)
		return err;
	v9fs_register_trans(&p9_pocketvm_trans);
	return 0;
}

static void __exit p9_pocketvm_exit(void)
{
	v9fs_unregister_trans(&p9_pocketvm_trans);
	unregister_reboot_notifier(&pvm_reboot_nb);
}

module_init(p9_pocketvm_init);
module_exit(p9_pocketvm_exit);
MODULE_ALIAS_9P("pocketvm");
MODULE_DESCRIPTION("9P transport over raw Ethernet frames to the pocketvm launcher");
MODULE_LICENSE("GPL");
