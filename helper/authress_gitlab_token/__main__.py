from authress_gitlab_token.entry import main

main()
