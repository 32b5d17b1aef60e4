/*
 * The conformance guest: a freestanding aarch64 program that Xen boots as a
 * dom0less domU (or as dom0).  It reports, through the console_io hypercall,
 * what Xen left in its event-channel table: EVTCHNOP_status for every valid
 * port plus the 2-level pending and mask bits from shared_info.  Then it
 * runs a small per-domain command table (patched into the image before QEMU
 * loads it) on a shared time base, dumps its table after every time slot, and
 * shuts itself down.
 *
 * Every ABI number below was checked against Xen 4.17's public headers
 * (xen.h, event_channel.h, memory.h, sched.h, arch-arm.h); the struct layouts
 * were checked by compiling offsetof() against those headers for aarch64.
 * Output lines all start with "@evt " so the host side can pick them out of
 * Xen's console, whatever prefix Xen adds ("(d1) " for a domU, none for dom0).
 */

typedef unsigned long u64;
typedef long s64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

/* Hypercall numbers (public/xen.h). */
#define HC_memory_op 12
#define HC_console_io 18
#define HC_sched_op 29
#define HC_event_channel_op 32
#define HC_hvm_op 34
#define HVMOP_get_param 1            /* public/hvm/hvm_op.h */
#define HVM_PARAM_STORE_PFN 1        /* public/hvm/params.h */
#define HVM_PARAM_STORE_EVTCHN 2

#define CONSOLEIO_write 0            /* public/xen.h */
#define DOMID_SELF 0x7FF0u           /* public/xen.h */
#define EVTCHNOP_bind_interdomain 0  /* public/event_channel.h */
#define EVTCHNOP_bind_virq 1
#define EVTCHNOP_close 3
#define EVTCHNOP_send 4
#define EVTCHNOP_status 5
#define EVTCHNOP_alloc_unbound 6
#define EVTCHNOP_bind_ipi 7
#define EVTCHNOP_bind_vcpu 8
#define EVTCHNOP_unmask 9
#define EVTCHNOP_reset 10
#define EVTCHNOP_reset_cont 14        /* public/event_channel.h, under __XEN__ */
#define XENMEM_add_to_physmap 7      /* public/memory.h */
#define XENMAPSPACE_shared_info 0
#define SCHEDOP_yield 0              /* public/sched.h */
#define SCHEDOP_shutdown 2
#define SCHEDOP_poll 3
#define SHUTDOWN_poweroff 0

/* 2-level ABI on Arm: xen_ulong_t is 64-bit, 64 words of 64 bits = 4096 ports. */
#define NR_2L_PORTS 4096
/* struct shared_info: vcpu_info[1] (48 bytes on Arm), then the two arrays. */
#define SHINFO_PENDING_OFF 48
#define SHINFO_MASK_OFF (48 + 512)
/* struct vcpu_info: u8 evtchn_upcall_pending at 0, xen_ulong_t evtchn_pending_sel at 8. */
#define VCPU_UPCALL_OFF 0
#define VCPU_SEL_OFF 8

struct evtchn_status {               /* 24 bytes, checked with offsetof */
	u16 dom;
	u16 pad0;
	u32 port;
	u32 status;
	u32 vcpu;
	union {
		struct { u16 dom; } unbound;
		struct { u16 dom; u16 pad; u32 port; } interdomain;
		u32 pirq;
		u32 virq;
	} u;
};

struct evtchn_alloc_unbound {        /* 8 bytes */
	u16 dom;
	u16 remote_dom;
	u32 port;                        /* OUT */
};

struct evtchn_bind_interdomain {     /* 12 bytes */
	u16 remote_dom;
	u16 pad;
	u32 remote_port;
	u32 local_port;                  /* OUT */
};

struct evtchn_bind_ipi {             /* 8 bytes */
	u32 vcpu;
	u32 port;                        /* OUT */
};

struct evtchn_bind_virq {            /* 12 bytes */
	u32 virq;
	u32 vcpu;
	u32 port;                        /* OUT */
};

struct evtchn_bind_vcpu {            /* 8 bytes */
	u32 port;
	u32 vcpu;
};

struct sched_poll {                  /* 24 bytes: guest handle, count, absolute timeout */
	u64 ports;
	u32 nr_ports;
	u32 pad;
	u64 timeout;                     /* Xen system time in ns */
};

struct xen_add_to_physmap {          /* 24 bytes */
	u16 domid;
	u16 size;
	u32 space;
	u64 idx;
	u64 gpfn;
};

/* The per-domain command table; the host finds it by its magic and patches it. */
#define MAX_CMDS 1024               /* commands, and slots: one call per slot */
#define OP_SEND 1                    /* EVTCHNOP_send */
#define OP_CLOSE 2                   /* EVTCHNOP_close */
#define OP_UNMASK 3                  /* EVTCHNOP_unmask */
#define OP_SETMASK 4                 /* guest writes its own mask bit (no hypercall) */
#define OP_CLEAR 5                   /* guest clears its own pending bit */
#define OP_ALLOC 6                   /* alloc_unbound toward domain arg */
#define OP_BIND 7                    /* bind_interdomain to (arg, port) */
#define OP_IPI 8                     /* bind_ipi on vcpu arg */
#define OP_VIRQ 9                    /* bind_virq virq=port on vcpu arg */
#define OP_BIND_VCPU 10              /* bind_vcpu port to vcpu arg */
#define OP_STATUS 11                 /* EVTCHNOP_status of (domid arg, port) */
#define OP_RESET 12                  /* EVTCHNOP_reset of domid arg */
#define OP_RESET_CONT 13             /* EVTCHNOP_reset_cont of domid arg */
#define FLAG_NO_SHUTDOWN 1           /* dom0: shutting it down would halt the machine */

struct cmd {
	u32 slot;
	u32 op;
	u32 port;
	u32 arg;
};

struct guest_cfg {
	char magic[8];                   /* "EVTCFG01" */
	char tag[32];                    /* NUL-terminated name the host gave this domain */
	u32 flags;
	u32 nslots;                      /* number of time slots after the initial dump */
	u32 slot_ms;                     /* length of one slot in milliseconds */
	u32 t0_ms;                       /* slot 0 starts at this physical-counter time */
	u32 ncmds;
	struct cmd cmds[MAX_CMDS];
};

__attribute__((section(".data.cfg"), used, aligned(8)))
volatile struct guest_cfg guest_cfg = {
	.magic = {'E', 'V', 'T', 'C', 'F', 'G', '0', '1'},
	.tag = "unnamed",
	.flags = 0,
	.nslots = 0,
	.slot_ms = 0,
	.t0_ms = 0,
	.ncmds = 0,
};

/* Page the shared_info frame is mapped over, and the stack.  Both lie in the
 * loaded image (the linker script makes them file contents), so Xen never puts
 * the guest's DTB on top of them. */
__attribute__((aligned(4096))) volatile u8 shinfo_page[4096];
__attribute__((aligned(16))) u8 guest_stack[16384];
__asm__(".globl guest_stack_top\n.set guest_stack_top, guest_stack + 16384\n");

/* The compiler may emit calls to these for struct initialisation. */
void *memset(void *dst, int c, unsigned long n);
void *memset(void *dst, int c, unsigned long n)
{
	volatile u8 *d = dst;
	while (n--)
		*d++ = (u8)c;
	return dst;
}

void *memcpy(void *dst, const void *src, unsigned long n);
void *memcpy(void *dst, const void *src, unsigned long n)
{
	volatile u8 *d = dst;
	const u8 *s = src;
	while (n--)
		*d++ = *s++;
	return dst;
}

extern s64 xen_hypercall(s64 nr, s64 a0, s64 a1, s64 a2);
extern u64 read_cntpct(void);
extern u64 read_cntfrq(void);

static char line[160];
static u32 line_len;

static void put_c(char c)
{
	if (line_len < sizeof(line) - 1)
		line[line_len++] = c;
}

static void put_s(const char *s)
{
	while (*s)
		put_c(*s++);
}

static void put_u(u64 v)
{
	char buf[24];
	int n = 0;
	do {
		buf[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		put_c(buf[--n]);
}

static void put_d(s64 v)
{
	if (v < 0) {
		put_c('-');
		put_u((u64)(-v));
	} else {
		put_u((u64)v);
	}
}

static void put_x(u64 v)
{
	static const char digits[] = "0123456789abcdef";
	int shift = 60;
	put_s("0x");
	while (shift > 0 && ((v >> shift) & 0xf) == 0)
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		put_c(digits[(v >> shift) & 0xf]);
}

static void put_kv(const char *key, s64 v)
{
	put_c(' ');
	put_s(key);
	put_c('=');
	put_d(v);
}

static void begin(const char *what)
{
	line_len = 0;
	put_s("@evt ");
	put_s(what);
}

static void flush(void)
{
	put_c('\n');
	xen_hypercall(HC_console_io, CONSOLEIO_write, (s64)line_len, (s64)line);
	line_len = 0;
}

static s64 evtchn_op(s64 cmd, void *arg)
{
	return xen_hypercall(HC_event_channel_op, cmd, (s64)arg, 0);
}

static int bit_of(u64 off, u32 port)
{
	volatile u64 *words = (volatile u64 *)(shinfo_page + off);
	return (int)((words[port / 64] >> (port % 64)) & 1);
}

static void set_bit_of(u64 off, u32 port, int value)
{
	volatile u64 *words = (volatile u64 *)(shinfo_page + off);
	u64 mask = 1ul << (port % 64);
	if (value)
		words[port / 64] |= mask;
	else
		words[port / 64] &= ~mask;
}

static int shinfo_mapped;
static u64 ticks_per_ms;

/* One line per port that is in use or has an event bit set, then a summary. */
static void dump(u32 phase)
{
	u32 port;
	s64 rc = 0;
	if (ticks_per_ms) {
		begin("begin");
		put_kv("phase", phase);
		put_kv("t_ms", (s64)(read_cntpct() / ticks_per_ms));
		flush();
	}
	for (port = 0; port < NR_2L_PORTS; port++) {
		struct evtchn_status st = {0};
		int pend = 0, mask = 0;
		st.dom = DOMID_SELF;
		st.port = port;
		rc = evtchn_op(EVTCHNOP_status, &st);
		if (rc != 0)
			break;                   /* first port past the valid range */
		if (shinfo_mapped) {
			pend = bit_of(SHINFO_PENDING_OFF, port);
			mask = bit_of(SHINFO_MASK_OFF, port);
		}
		if (st.status == 0 && !pend && !mask)
			continue;
		begin("port");
		put_kv("phase", phase);
		put_kv("port", port);
		put_kv("st", st.status);
		if (st.status == 1) {
			put_kv("rdom", st.u.unbound.dom);
		} else if (st.status == 2) {
			put_kv("rdom", st.u.interdomain.dom);
			put_kv("rport", st.u.interdomain.port);
		} else if (st.status == 3 || st.status == 4) {
			put_kv("irq", st.u.virq);
		}
		put_kv("vcpu", st.vcpu);
		put_kv("pend", pend);
		put_kv("mask", mask);
		flush();
	}
	begin("valid");
	put_kv("phase", phase);
	put_kv("n", port);
	put_kv("rc", rc);
	flush();
	if (shinfo_mapped) {
		begin("vcpu");
		put_kv("phase", phase);
		put_kv("upcall", shinfo_page[VCPU_UPCALL_OFF]);
		put_s(" sel=");
		put_x(*(volatile u64 *)(shinfo_page + VCPU_SEL_OFF));
		flush();
	}
	begin("end");
	put_kv("phase", phase);
	if (ticks_per_ms)
		put_kv("t_ms", (s64)(read_cntpct() / ticks_per_ms));
	flush();
}

/*
 * Sleep until the physical counter reaches T.  Busy-waiting (even with
 * SCHEDOP_yield) let one domain starve the others for seconds under credit2
 * on a loaded host, so the guest blocks in SCHEDOP_poll on no ports with a
 * timeout.  Xen's system time counts from Xen's boot, slightly after the
 * counter's zero, so the timer fires a little late: the same for every
 * domain, and the loop re-checks the counter anyway.  An event sent to the
 * domain meanwhile only makes it poll again.
 */
/*
 * SCHEDOP_poll's timeout is Xen's system time, which counts from Xen's own start
 * (boot_count in xen/arch/arm/time.c), while the physical counter counts from QEMU's:
 * a timeout written in counter time wakes the guest that much later (~150 ms
 * measured), whole slots late.  One poll "until now" in counter time sleeps exactly
 * that offset; it is taken off every later timeout.  (A guest with events pending
 * returns at once: offset 0, and its polls return at once anyway.)
 */
static u64 xen_offset_ticks;

static void calibrate_poll(void)
{
	struct sched_poll poll = {0};
	u64 start = read_cntpct();
	poll.timeout = start * 1000000ul / ticks_per_ms;
	xen_hypercall(HC_sched_op, SCHEDOP_poll, (s64)&poll, 0);
	xen_offset_ticks = read_cntpct() - start;
}

static void wait_until(u64 t)
{
	while (read_cntpct() < t) {
		struct sched_poll poll = {0};
		u64 xen_t = t > xen_offset_ticks ? t - xen_offset_ticks : 1;
		poll.timeout = xen_t * 1000000ul / ticks_per_ms;
		if (xen_hypercall(HC_sched_op, SCHEDOP_poll, (s64)&poll, 0) != 0)
			xen_hypercall(HC_sched_op, SCHEDOP_yield, 0, 0);
	}
}

static void run_cmd(u32 slot, volatile struct cmd *c)
{
	s64 rc;
	u32 port = c->port;
	u32 out = 0;
	int has_out = 0;
	begin("call");
	put_kv("slot", slot);
	switch (c->op) {
	case OP_SEND: {
		u32 send = port;
		rc = evtchn_op(EVTCHNOP_send, &send);
		put_s(" op=send");
		break;
	}
	case OP_CLOSE: {
		u32 close = port;
		rc = evtchn_op(EVTCHNOP_close, &close);
		put_s(" op=close");
		break;
	}
	case OP_UNMASK: {
		u32 unmask = port;
		rc = evtchn_op(EVTCHNOP_unmask, &unmask);
		put_s(" op=unmask");
		break;
	}
	case OP_SETMASK:
		set_bit_of(SHINFO_MASK_OFF, port, 1);
		rc = 0;
		put_s(" op=setmask");
		break;
	case OP_CLEAR:
		set_bit_of(SHINFO_PENDING_OFF, port, 0);
		rc = 0;
		put_s(" op=clear");
		break;
	case OP_ALLOC: {
		struct evtchn_alloc_unbound a = {0};
		a.dom = DOMID_SELF;
		a.remote_dom = (u16)c->arg;
		rc = evtchn_op(EVTCHNOP_alloc_unbound, &a);
		out = a.port;
		has_out = 1;
		put_s(" op=alloc_unbound");
		break;
	}
	case OP_BIND: {
		struct evtchn_bind_interdomain b = {0};
		b.remote_dom = (u16)c->arg;
		b.remote_port = port;
		rc = evtchn_op(EVTCHNOP_bind_interdomain, &b);
		out = b.local_port;
		has_out = 1;
		put_s(" op=bind_interdomain");
		break;
	}
	case OP_IPI: {
		struct evtchn_bind_ipi b = {0};
		b.vcpu = c->arg;
		rc = evtchn_op(EVTCHNOP_bind_ipi, &b);
		out = b.port;
		has_out = 1;
		put_s(" op=bind_ipi");
		break;
	}
	case OP_VIRQ: {
		struct evtchn_bind_virq b = {0};
		b.virq = port;
		b.vcpu = c->arg;
		rc = evtchn_op(EVTCHNOP_bind_virq, &b);
		out = b.port;
		has_out = 1;
		put_s(" op=bind_virq");
		break;
	}
	case OP_BIND_VCPU: {
		struct evtchn_bind_vcpu b = {0};
		b.port = port;
		b.vcpu = c->arg;
		rc = evtchn_op(EVTCHNOP_bind_vcpu, &b);
		put_s(" op=bind_vcpu");
		break;
	}
	case OP_STATUS: {
		struct evtchn_status st = {0};
		st.dom = (u16)c->arg;
		st.port = port;
		rc = evtchn_op(EVTCHNOP_status, &st);
		put_s(" op=status");
		if (rc == 0) {
			/* what Xen copied back; every field, the host keeps the ones the
			 * status names (the rest of the union is whatever Xen left) */
			put_kv("st", st.status);
			put_kv("svcpu", st.vcpu);
			put_kv("sdom", st.u.interdomain.dom);
			put_kv("sport", st.u.interdomain.port);
			put_kv("svirq", st.u.virq);
		}
		break;
	}
	case OP_RESET:
	case OP_RESET_CONT: {
		u16 reset = (u16)c->arg;     /* struct evtchn_reset: one domid_t */
		rc = evtchn_op(c->op == OP_RESET ? EVTCHNOP_reset : EVTCHNOP_reset_cont, &reset);
		put_s(c->op == OP_RESET ? " op=reset" : " op=reset_cont");
		break;
	}
	default:
		rc = -1;
		put_s(" op=unknown");
		break;
	}
	put_kv("port", port);
	put_kv("arg", c->arg);
	put_kv("rc", rc);
	if (has_out && rc == 0)
		put_kv("out", out);
	put_kv("t_ms", (s64)(read_cntpct() / ticks_per_ms));
	flush();
}

/*
 * What the domain's own device tree says (Xen builds it: dom0's from the host tree,
 * a domU's from scratch): every node with a compatible starting "xen,evtchn" (its
 * path), and whether there is a Xen hypervisor node (compatible "xen,xen").  The
 * tree's address arrives in x0 (the arm64 boot protocol); the MMU is off, so it
 * is read where it lies, a byte at a time.
 */
static u32 be32(const volatile u8 *p)
{
	return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | (u32)p[3];
}

static int starts(const volatile u8 *p, u32 len, const char *prefix)
{
	u32 i;
	for (i = 0; prefix[i]; i++)
		if (i >= len || p[i] != (u8)prefix[i])
			return 0;
	return 1;
}

/* Whether any string of the list VALUE (LEN bytes) starts with PREFIX. */
static int compat_has(const volatile u8 *v, u32 len, const char *prefix)
{
	u32 i = 0;
	while (i < len) {
		if (starts(v + i, len - i, prefix))
			return 1;
		while (i < len && v[i])
			i++;
		i++;
	}
	return 0;
}

#define DT_MAX_DEPTH 16

static void dump_dt(u64 dtb)
{
	const volatile u8 *fdt = (const volatile u8 *)dtb;
	const volatile u8 *names[DT_MAX_DEPTH];
	u32 off, end, strings, depth = 0, nodes = 0, evtchn = 0, hyp = 0, d;

	if (dtb == 0 || (dtb & 7) || be32(fdt) != 0xd00dfeedu) {
		begin("dt");
		put_s(" none=1");
		flush();
		return;
	}
	off = be32(fdt + 8);
	strings = be32(fdt + 12);
	end = off + be32(fdt + 36);
	while (off + 4 <= end) {
		u32 tok = be32(fdt + off);
		off += 4;
		if (tok == 1) {                      /* FDT_BEGIN_NODE */
			if (depth < DT_MAX_DEPTH)
				names[depth] = fdt + off;
			depth++;
			nodes++;
			while (fdt[off])
				off++;
			off = (off + 1 + 3) & ~3u;
		} else if (tok == 2) {               /* FDT_END_NODE */
			if (depth)
				depth--;
		} else if (tok == 3) {               /* FDT_PROP */
			u32 len = be32(fdt + off), name = be32(fdt + off + 4);
			const volatile u8 *v = fdt + off + 8;
			if (starts(fdt + strings + name, 12, "compatible") &&
			    fdt[strings + name + 10] == 0) {
				if (compat_has(v, len, "xen,evtchn") && depth <= DT_MAX_DEPTH) {
					evtchn++;
					begin("dtnode path=");
					if (depth <= 1)
						put_c('/');
					for (d = 1; d < depth; d++) {
						const volatile u8 *n = names[d];
						put_c('/');
						while (*n)
							put_c((char)*n++);
					}
					flush();
				}
				if (compat_has(v, len, "xen,xen"))
					hyp = 1;
			}
			off = (off + 8 + len + 3) & ~3u;
		} else if (tok == 4) {               /* FDT_NOP */
			continue;
		} else {                             /* FDT_END or garbage */
			break;
		}
	}
	begin("dt");
	put_kv("nodes", nodes);
	put_kv("evtchn_nodes", evtchn);
	put_kv("hypervisor", hyp);
	flush();
}

/* HVMOP_get_param on itself: where Xen says its xenstore page and channel are. */
struct xen_hvm_param {               /* public/hvm/hvm_op.h: 16 bytes */
	u16 domid;
	u16 pad;
	u32 index;
	u64 value;
};

static void dump_params(void)
{
	struct xen_hvm_param p = {0};
	s64 rc;

	begin("params");
	p.domid = DOMID_SELF;
	p.index = HVM_PARAM_STORE_PFN;
	rc = xen_hypercall(HC_hvm_op, HVMOP_get_param, (s64)&p, 0);
	put_kv("pfn_rc", rc);
	put_s(" store_pfn=");
	put_x(rc == 0 ? p.value : 0);
	p.value = 0;
	p.index = HVM_PARAM_STORE_EVTCHN;
	rc = xen_hypercall(HC_hvm_op, HVMOP_get_param, (s64)&p, 0);
	put_kv("evtchn_rc", rc);
	put_kv("store_evtchn", rc == 0 ? (s64)p.value : -1);
	flush();
}

void guest_main(u64 dtb);
void guest_main(u64 dtb)
{
	struct xen_add_to_physmap xatp = {0};
	s64 rc;
	u64 start;
	u32 slot, i;

	begin("hello tag=");
	for (i = 0; i < sizeof(guest_cfg.tag) && guest_cfg.tag[i]; i++)
		put_c(guest_cfg.tag[i]);
	put_kv("flags", guest_cfg.flags);
	put_kv("slots", guest_cfg.nslots);
	put_kv("cmds", guest_cfg.ncmds);
	put_kv("t_ms", (s64)(read_cntpct() / (read_cntfrq() / 1000)));
	flush();

	xatp.domid = DOMID_SELF;
	xatp.space = XENMAPSPACE_shared_info;
	xatp.idx = 0;
	xatp.gpfn = (u64)shinfo_page >> 12;
	rc = xen_hypercall(HC_memory_op, XENMEM_add_to_physmap, (s64)&xatp, 0);
	shinfo_mapped = (rc == 0);
	begin("shinfo");
	put_kv("rc", rc);
	put_s(" gpa=");
	put_x((u64)shinfo_page);
	flush();

	ticks_per_ms = read_cntfrq() / 1000;
	calibrate_poll();
	dump(0);
	dump_dt(dtb);
	dump_params();

	/* The physical counter is the same for every domain (it counts from QEMU's
	 * start), so an absolute T0 lines the slots of all domains up. */
	start = (u64)guest_cfg.t0_ms * ticks_per_ms;
	if (guest_cfg.nslots && read_cntpct() >= start) {
		begin("late");
		put_kv("t_ms", (s64)(read_cntpct() / ticks_per_ms));
		flush();
	}
	for (slot = 0; slot < guest_cfg.nslots && slot < MAX_CMDS; slot++) {
		u64 slot_start = start + (u64)slot * guest_cfg.slot_ms * ticks_per_ms;
		wait_until(slot_start);
		for (i = 0; i < guest_cfg.ncmds && i < MAX_CMDS; i++)
			if (guest_cfg.cmds[i].slot == slot)
				run_cmd(slot, &guest_cfg.cmds[i]);
		/* Dump in the middle of the slot, once every domain has acted. */
		wait_until(slot_start + guest_cfg.slot_ms * ticks_per_ms / 2);
		dump(slot + 1);
	}

	begin("done");
	flush();
	if (!(guest_cfg.flags & FLAG_NO_SHUTDOWN)) {
		u32 reason = SHUTDOWN_poweroff;
		xen_hypercall(HC_sched_op, SCHEDOP_shutdown, (s64)&reason, 0);
	}
	for (;;) {                       /* dom0: sleep, never spin, until QEMU is stopped */
		struct sched_poll poll = {0};
		if (xen_hypercall(HC_sched_op, SCHEDOP_poll, (s64)&poll, 0) != 0)
			xen_hypercall(HC_sched_op, SCHEDOP_yield, 0, 0);
	}
}
