/*
 * Host tool: write a test disk for the Flint test guest.
 *   byte j of sector s = (s*7 + j) & 0xff          (the disk pattern)
 * With WSECTOR given, that sector holds the guest's write pattern instead,
 *   byte j of sector s = (s*13 + j + 1) & 0xff
 * (what the disk looks like after the guest's blk write test; used to compare).
 * Usage: mkdisk FILE SECTORS [WSECTOR]
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: %s FILE SECTORS [WSECTOR]\n", argv[0]);
		return 2;
	}
	long n = strtol(argv[2], 0, 0);
	long w = argc == 4 ? strtol(argv[3], 0, 0) : -1;
	FILE *f = fopen(argv[1], "wb");
	if (!f || n <= 0) {
		perror(argv[1]);
		return 1;
	}
	unsigned char sec[512];
	for (long s = 0; s < n; s++) {
		for (int j = 0; j < 512; j++)
			sec[j] = (unsigned char)(s == w ? (s * 13 + j + 1) & 0xff : (s * 7 + j) & 0xff);
		if (fwrite(sec, 1, 512, f) != 512) {
			perror("write");
			return 1;
		}
	}
	return fclose(f) ? 1 : 0;
}
