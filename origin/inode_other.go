//go:build !unix

package origin

import "io/fs"

// inode is 0 where the file system gives no inode number.
func inode(fs.FileInfo) uint64 { return 0 }
