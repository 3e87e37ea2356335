module authplug.example/refreshtoken

go 1.19
