/*
 * Entry point of the conformance guest: an arm64 Image header (so that Xen's
 * zImage64 probe accepts the file as a kernel), then a minimal start-up that
 * sets a stack and calls guest_main.  Everything is PC-relative: Xen loads a
 * domU at its RAM base and dom0 wherever its 1:1 memory happens to be.
 */
	.section .text.head, "ax"
	.globl _head
_head:
	b	_start			/* code0 */
	.long	0			/* code1 */
	.quad	0			/* text_offset: load at the start of RAM */
	.quad	_image_size		/* image_size */
	.quad	0			/* flags: little endian, page size unspecified */
	.quad	0, 0, 0			/* reserved */
	.ascii	"ARM\x64"		/* magic */
	.long	0			/* reserved (PE offset) */

	.text
	.globl _start
_start:
	msr	daifset, #0xf		/* no interrupts: pending bits stay visible */
	adrp	x1, guest_stack_top
	add	x1, x1, :lo12:guest_stack_top
	mov	sp, x1
	bl	guest_main
1:	wfi
	b	1b

/*
 * long xen_hypercall(long nr, long a0, long a1, long a2)
 * Arm hypercall ABI: number in x16, arguments in x0.., HVC immediate 0xEA1,
 * result in x0.
 */
	.globl xen_hypercall
xen_hypercall:
	mov	x16, x0
	mov	x0, x1
	mov	x1, x2
	mov	x2, x3
	hvc	#0xea1
	ret

	.globl read_cntpct
read_cntpct:
	isb
	mrs	x0, cntpct_el0
	ret

	.globl read_cntfrq
read_cntfrq:
	mrs	x0, cntfrq_el0
	ret
